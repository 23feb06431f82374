//! `--mode mutate`: M writers each toggle a role binding of their own
//! users (assign, then unassign, ...), and after every acknowledged change
//! send a Check at the revision the reply gave, which must show the change.

use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::report::{Report, micros, percentile};
use super::{BenchArgs, BenchError};
use crate::proto::admin_client::AdminClient;
use crate::proto::authorization_client::AuthorizationClient;
use crate::proto::consistency::Requirement;
use crate::proto::{
    AddUserRequest, AssignRequest, CatalogEntry, CheckRequest, Consistency, CreateRoleRequest,
    Decision, DefineCatalogEntryRequest, GrantRequest, GrantSpec, UnassignRequest,
};

/// The catalog entry, role and user names `--mode mutate` adds to its tenant.
pub const MUTATE_PERMISSION: &str = "rampart-bench:toggle";
pub const MUTATE_ROLE: &str = "rampart-bench-toggle";
/// Users per writer in `--mode mutate`; a writer cycles through them.
pub const MUTATE_USERS_PER_WRITER: usize = 4;

/// The id of `--mode mutate`'s user `k` of writer `writer`.
pub fn mutate_user(writer: usize, k: usize) -> String {
    format!("rampart-bench-w{writer}-{k}")
}

/// Whether an Admin reply is a success, or a refusal that says the thing
/// is already there (setup is idempotent across runs).
fn created<T>(reply: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
    match reply {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s),
    }
}

/// `--mode mutate`'s setup, as the operator: the catalog entry, the role
/// holding it, and every writer's users.
async fn mutate_setup(args: &BenchArgs, channel: Channel) -> Result<(), BenchError> {
    let mut admin = AdminClient::new(channel);
    let tenant = args.tenant.clone();
    let failed = |what: &'static str, status: tonic::Status| BenchError::Setup {
        what,
        tenant: tenant.clone(),
        status,
    };
    created(
        admin
            .define_catalog_entry(DefineCatalogEntryRequest {
                entry: Some(CatalogEntry {
                    permission: MUTATE_PERMISSION.into(),
                    category: "rampart bench".into(),
                    description: "toggled by `rampart bench --mode mutate`".into(),
                    stability: "stable".into(),
                    builtin: false,
                }),
                ..Default::default()
            })
            .await,
    )
    .map_err(|s| failed("define the catalog entry", s))?;
    created(
        admin
            .create_role(CreateRoleRequest {
                tenant: tenant.clone(),
                role: MUTATE_ROLE.into(),
                description: "toggled by `rampart bench --mode mutate`".into(),
                ..Default::default()
            })
            .await,
    )
    .map_err(|s| failed("create the role", s))?;
    created(
        admin
            .grant(GrantRequest {
                tenant: tenant.clone(),
                role: MUTATE_ROLE.into(),
                grant: Some(GrantSpec {
                    effect: "allow".into(),
                    pattern: MUTATE_PERMISSION.into(),
                }),
                ..Default::default()
            })
            .await,
    )
    .map_err(|s| failed("grant the role", s))?;
    for writer in 0..args.concurrency as usize {
        for k in 0..MUTATE_USERS_PER_WRITER {
            created(
                admin
                    .add_user(AddUserRequest {
                        tenant: tenant.clone(),
                        user: mutate_user(writer, k),
                        status: "active".into(),
                        ..Default::default()
                    })
                    .await,
            )
            .map_err(|s| failed("add a user", s))?;
        }
    }
    Ok(())
}

/// A Check of `user` for the toggled permission, at `revision` or newer:
/// whether it is allowed.
async fn toggled(
    client: &mut AuthorizationClient<Channel>,
    tenant: &str,
    user: &str,
    revision: u64,
) -> Result<bool, tonic::Status> {
    let reply = client
        .check(CheckRequest {
            tenant: tenant.to_owned(),
            subject: user.to_owned(),
            permission: MUTATE_PERMISSION.into(),
            consistency: Some(Consistency {
                requirement: Some(Requirement::AtLeastRevision(revision)),
            }),
            explain: false,
        })
        .await?;
    Ok(reply.into_inner().decision == Decision::Allow as i32)
}

/// One writer's share of `--rate`: a mutation every `every`, the first
/// `offset` after the start, so the writers' sends interleave evenly.
#[derive(Debug, Clone, Copy)]
struct Pace {
    every: Duration,
    offset: Duration,
}

/// What one writer measured.
#[derive(Debug, Default)]
struct WriterResult {
    ack: Vec<u32>,
    visible: Vec<u32>,
    errors: u64,
    mismatches: u64,
}

async fn mutate_writer(
    channel: Channel,
    checking: Channel,
    tenant: String,
    writer: usize,
    warm_until: Instant,
    end: Instant,
    pace: Option<Pace>,
) -> WriterResult {
    let mut admin = AdminClient::new(channel);
    let mut check = AuthorizationClient::new(checking);
    let users: Vec<String> = (0..MUTATE_USERS_PER_WRITER)
        .map(|k| mutate_user(writer, k))
        .collect();
    let mut out = WriterResult::default();
    // Whether each user holds the role now; `None`: ask the server first.
    let mut bound: Vec<Option<bool>> = vec![None; users.len()];
    let mut step = 0usize;
    let mut due = pace.map(|p| Instant::now() + p.offset);
    loop {
        if let (Some(at), Some(p)) = (due.as_mut(), pace) {
            tokio::time::sleep_until((*at).into()).await;
            *at += p.every;
        }
        let k = step % users.len();
        step += 1;
        let user = &users[k];
        let holds = match bound[k] {
            Some(b) => b,
            None => match toggled(&mut check, &tenant, user, 0).await {
                Ok(b) => *bound[k].insert(b),
                Err(_) => {
                    let now = Instant::now();
                    if now >= warm_until {
                        out.errors += 1;
                    }
                    if now >= end {
                        break;
                    }
                    continue;
                }
            },
        };
        let started = Instant::now();
        if started >= end {
            break;
        }
        let measuring = started >= warm_until;
        let reply = if holds {
            admin
                .unassign(UnassignRequest {
                    tenant: tenant.clone(),
                    subject: user.clone(),
                    role: MUTATE_ROLE.into(),
                    ..Default::default()
                })
                .await
        } else {
            admin
                .assign(AssignRequest {
                    tenant: tenant.clone(),
                    subject: user.clone(),
                    role: MUTATE_ROLE.into(),
                    ..Default::default()
                })
                .await
        };
        let acked = started.elapsed();
        let revision = match reply {
            Ok(r) => r.into_inner().revision,
            Err(_) => {
                // Ask the server where this user stands before the next try.
                bound[k] = None;
                if measuring {
                    out.errors += 1;
                }
                continue;
            }
        };
        let want = !holds;
        bound[k] = Some(want);
        let answer = toggled(&mut check, &tenant, user, revision).await;
        let visible = started.elapsed();
        if !measuring {
            continue;
        }
        out.ack.push(micros(acked));
        match answer {
            Ok(now) if now == want => out.visible.push(micros(visible)),
            Ok(_) => {
                out.mismatches += 1;
                out.errors += 1;
            }
            Err(_) => out.errors += 1,
        }
    }
    out
}

/// `--mode mutate`: see the module comment.
pub async fn run_mutate(
    args: &BenchArgs,
    channels: &[Channel],
    checks: &[Channel],
) -> Result<Report, BenchError> {
    let first = channels.first().ok_or(BenchError::NoConnection)?;
    mutate_setup(args, first.clone()).await?;
    let warm_until = Instant::now() + Duration::from_secs(args.warmup_secs);
    let end = warm_until + Duration::from_secs(args.duration_secs);
    let writers = args.concurrency.max(1);
    let pace = |writer: usize| {
        args.rate.map(|rate| {
            let every = Duration::from_secs_f64(f64::from(writers) / f64::from(rate));
            Pace {
                every,
                offset: every.mul_f64(writer as f64 / f64::from(writers)),
            }
        })
    };
    let tasks: Vec<_> = (0..args.concurrency as usize)
        .map(|writer| {
            tokio::spawn(mutate_writer(
                channels[writer % channels.len()].clone(),
                checks[writer % checks.len().max(1)].clone(),
                args.tenant.clone(),
                writer,
                warm_until,
                end,
                pace(writer),
            ))
        })
        .collect();
    let mut total = WriterResult::default();
    for t in tasks {
        let r = t.await.map_err(BenchError::Writer)?;
        total.ack.extend(r.ack);
        total.visible.extend(r.visible);
        total.errors += r.errors;
        total.mismatches += r.mismatches;
    }
    total.ack.sort_unstable();
    total.visible.sort_unstable();
    let seconds = args.duration_secs as f64;
    let calls = total.ack.len() as u64;
    let confirmed = total.visible.len() as u64;
    Ok(Report {
        mode: "mutate",
        calls,
        errors: total.errors,
        decisions: confirmed,
        seconds,
        calls_per_sec: calls as f64 / seconds,
        decisions_per_sec: confirmed as f64 / seconds,
        p50_us: percentile(&total.ack, 50.0),
        p90_us: percentile(&total.ack, 90.0),
        p99_us: percentile(&total.ack, 99.0),
        max_us: total.ack.last().copied().map_or(0, u64::from),
        mismatches: total.mismatches,
        visible_p50_us: percentile(&total.visible, 50.0),
        visible_p90_us: percentile(&total.visible, 90.0),
        visible_p99_us: percentile(&total.visible, 99.0),
        visible_max_us: total.visible.last().copied().map_or(0, u64::from),
    })
}
