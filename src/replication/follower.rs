//! `rampart serve --follow URL`: a read replica.
//!
//! One task: connect to the leader, Watch from the replica's own revision
//! and history, apply each change through `Engine::replicate` (the leader's
//! `apply` + incremental compile + swap, and the replica's own durable
//! changelog), and on `OUT_OF_RANGE` (the changelog was compacted past the
//! replica, or the leader's history is another one) bootstrap again from
//! Export. Any other failure reconnects with exponential backoff.
//!
//! A new replica's store has a fresh history of its own, so its first Watch
//! is refused and it bootstraps: one path for "new", "too far behind" and
//! "the leader was restored from a backup".
//!
//! A scoped replica (its engine holds some tenants only, `--tenants`) asks
//! for those tenants in every Export and Watch, reconnects and
//! re-bootstraps included, and moves to each Watch checkpoint's revision
//! (`Engine::skip_to`): the filtered stream skips the revisions of other
//! tenants' changes. Its engine has no store: it starts empty, so its first
//! round bootstraps, and it keeps the history it installed in memory.
//!
//! A leader that refuses the replica's credential (UNAUTHENTICATED,
//! PERMISSION_DENIED: a wrong token, or one confined to fewer tenants than
//! `--tenants` names) is logged as an error naming why, and tried again
//! with backoff, since the leader may reload its tokens file. So is a
//! leader that answers a replica of every tenant with some tenants only
//! (its token is confined to them): installing that as the whole state, or
//! following its gaps, would be wrong.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic::Code;
use tracing::{error, info, warn};

use super::service::{Origin, receive_export};
use super::{ReplicaStatus, TENANTS_HEADER};
use crate::client::{self, AuthedChannel, Bearer, ClientSecurity};
use crate::engine::{Engine, Scope, SubmitError};
use crate::model::{Mutation, Timestamp};
use crate::proto::{self, replication_client::ReplicationClient, watch_event::Event};
use crate::store::{Change, StoreError};

/// How a replica follows its leader.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The leader's URL, e.g. `http://leader:50051`.
    pub leader: String,
    /// Health is NOT_SERVING while the replica's lag exceeds this.
    pub max_lag: Duration,
    /// The longest wait between reconnection attempts.
    pub backoff_max: Duration,
    /// TLS settings for an `https://` leader, and the bearer token to send.
    pub security: ClientSecurity,
}

/// How the follower reports readiness: called with `true` once the replica
/// has caught up with its leader, `false` when its lag passes the bound.
/// The composition root turns it into gRPC health.
pub type Readiness = Arc<
    dyn Fn(bool) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

/// Most changes applied (and flushed) together.
const BATCH: usize = 256;

/// How often a connected replica logs its status.
const STATUS_EVERY: Duration = Duration::from_secs(60);

/// Why one round of following ended.
enum Ended {
    /// The leader cannot serve our revision: bootstrap again.
    Rebootstrap(String),
    /// The connection failed or closed: reconnect after a pause.
    Reconnect(String),
    /// The leader refuses what this replica asks with its credential: try
    /// again after a pause (the leader may reload its tokens), loudly.
    Refused(String),
}

impl Ended {
    /// How a status from the leader ends a round.
    fn from_status(s: &tonic::Status) -> Self {
        let why = s.message().to_owned();
        match s.code() {
            Code::OutOfRange => Self::Rebootstrap(why),
            Code::PermissionDenied | Code::Unauthenticated => Self::Refused(why),
            _ => Self::Reconnect(why),
        }
    }
}

/// A refusal when a replica of every tenant (no `--tenants`, `scope`
/// `None`) hears a stream or an export of some tenants only: the leader
/// confines its credential to them.
fn confined_answer(
    scope: Option<&Scope>,
    metadata: &tonic::metadata::MetadataMap,
) -> Option<Ended> {
    if scope.is_some() {
        return None;
    }
    let tenants = metadata.get(TENANTS_HEADER)?.to_str().unwrap_or("?");
    Some(Ended::Refused(format!(
        "the leader sends this replica of every tenant only tenant(s) {tenants}, as its follow token is confined to them: give it a token that is not confined, or start it with --tenants {tenants}"
    )))
}

/// Follows the leader until the task is aborted.
pub async fn follow(
    engine: Arc<Engine>,
    config: FollowConfig,
    status: Arc<ReplicaStatus>,
    health: Readiness,
) {
    let first_backoff = Duration::from_millis(100);
    let mut backoff = first_backoff;
    let mut serving = false;
    // A restarted replica that must bootstrap again counts as a re-bootstrap.
    let mut had_state = engine.load().revision() > 0;
    // After a failed bootstrap the store may hold part of it: bootstrap
    // again before anything else.
    let mut must_bootstrap = false;
    loop {
        let ended = match connect(&config.leader, &config.security).await {
            Err(e) => Ended::Reconnect(e),
            Ok(mut client) => {
                let round = watch(
                    !had_state || must_bootstrap,
                    &mut client,
                    &engine,
                    &config,
                    &status,
                    &health,
                    &mut serving,
                    &mut backoff,
                )
                .await;
                match round {
                    Ended::Rebootstrap(why) => {
                        info!(leader = %config.leader, reason = %why, "bootstrapping from the leader's export");
                        match bootstrap(&mut client, &engine).await {
                            Ok(revision) => {
                                must_bootstrap = false;
                                if had_state {
                                    status.rebootstraps.fetch_add(1, Ordering::Relaxed);
                                }
                                had_state = true;
                                info!(revision, "bootstrapped from the leader");
                                continue;
                            }
                            Err(Ended::Refused(why)) => {
                                must_bootstrap = true;
                                Ended::Refused(why)
                            }
                            Err(Ended::Reconnect(why) | Ended::Rebootstrap(why)) => {
                                must_bootstrap = true;
                                Ended::Reconnect(format!("bootstrap failed: {why}"))
                            }
                        }
                    }
                    other => other,
                }
            }
        };
        let retry_ms = backoff.as_millis() as u64;
        match ended {
            Ended::Reconnect(why) | Ended::Rebootstrap(why) => {
                warn!(leader = %config.leader, reason = %why, retry_ms, "lost the leader; reconnecting");
            }
            Ended::Refused(why) => {
                error!(leader = %config.leader, reason = %why, retry_ms, "the leader refuses this replica (its follow token, the leader's tokens file or --tenants must change); trying again");
            }
        }
        status.connected.store(false, Ordering::Relaxed);
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

async fn connect(
    leader: &str,
    security: &ClientSecurity,
) -> Result<ReplicationClient<AuthedChannel>, String> {
    let bearer = Bearer::new(security.token.as_ref()).map_err(|e| e.to_string())?;
    let endpoint = client::endpoint(leader, security.tls.as_ref())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {leader}: {e}"))?;
    Ok(ReplicationClient::with_interceptor(channel, bearer).max_decoding_message_size(64 << 20))
}

/// One Watch stream, until it ends.
#[allow(clippy::too_many_arguments, reason = "one caller; the loop's state")]
async fn watch(
    fresh: bool,
    client: &mut ReplicationClient<AuthedChannel>,
    engine: &Arc<Engine>,
    config: &FollowConfig,
    status: &ReplicaStatus,
    health: &Readiness,
    serving: &mut bool,
    backoff: &mut Duration,
) -> Ended {
    let history = match engine.history().await {
        Ok(h) => h.id,
        Err(e) => return Ended::Reconnect(e.to_string()),
    };
    let from = engine.load().revision();
    if fresh {
        return Ended::Rebootstrap("this replica holds no state yet".into());
    }
    let request = proto::WatchRequest {
        from_revision: from,
        // A scoped replica hears only its tenants' changes (and those of
        // none), with checkpoints for the revisions left out.
        tenants: engine.scope().map(Scope::names).unwrap_or_default(),
        history,
    };
    let mut stream = match client.watch(request).await {
        Ok(r) => match confined_answer(engine.scope(), r.metadata()) {
            Some(refused) => return refused,
            None => r.into_inner(),
        },
        Err(s) => return Ended::from_status(&s),
    };
    status.connected.store(true, Ordering::Relaxed);
    *backoff = Duration::from_millis(100);
    info!(leader = %config.leader, from, "following the leader");
    let mut reported = std::time::Instant::now();
    loop {
        // One event, then whatever else has already arrived: applied and
        // made durable together, published once.
        let mut events = vec![match stream.message().await {
            Ok(Some(e)) => e,
            Ok(None) => return Ended::Reconnect("the leader closed the stream".into()),
            Err(s) => return Ended::from_status(&s),
        }];
        let mut ended = None;
        while events.len() < BATCH {
            // A zero timeout polls once: an event already received, or none.
            match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                Ok(Ok(Some(e))) => events.push(e),
                Ok(Ok(None)) => {
                    ended = Some(Ended::Reconnect("the leader closed the stream".into()));
                    break;
                }
                Ok(Err(s)) => {
                    ended = Some(Ended::from_status(&s));
                    break;
                }
                Err(_) => break,
            }
        }
        let head = events.iter().map(|e| e.head_revision).max().unwrap_or(0);
        status.leader_revision.store(head, Ordering::Relaxed);
        // Every change up to a checkpoint was sent or left out by the
        // filter: a scoped replica moves to it (`Engine::skip_to`).
        let through = events
            .iter()
            .filter_map(|e| match &e.event {
                Some(Event::Checkpoint(c)) => Some(c.revision),
                _ => None,
            })
            .max();
        let changes: Vec<proto::Change> = events
            .into_iter()
            .filter_map(|e| match e.event {
                Some(Event::Change(c)) => Some(c),
                _ => None,
            })
            .collect();
        let last_time = changes.last().map(|c| c.time.clone());
        let first = changes.first().map(|c| c.revision);
        if let Err(failure) = apply(engine, changes).await {
            match failure {
                Failure::Diverged(why) => {
                    error!(revision = first, reason = %why, "a replicated change does not apply: bootstrapping again");
                    return Ended::Rebootstrap(why);
                }
                Failure::Retry(why) => return Ended::Reconnect(why),
            }
        }
        if let Some(through) = through
            && let Err(e) = engine.skip_to(through).await
        {
            return Ended::Reconnect(e.to_string());
        }
        let applied = engine.load().revision();
        let lag = match last_time {
            Some(time) if head > applied => {
                Timestamp::parse(&time).map_or(0, |t| lag_ms(t, Timestamp::now()))
            }
            _ if applied >= head => 0,
            _ => ReplicaStatus::get(&status.lag_ms),
        };
        status.lag_ms.store(lag, Ordering::Relaxed);
        if applied >= head {
            status.caught_up.store(true, Ordering::Relaxed);
        }
        if reported.elapsed() >= STATUS_EVERY {
            reported = std::time::Instant::now();
            info!(
                applied,
                leader_revision = head,
                lag_revisions = head.saturating_sub(applied),
                lag_ms = ReplicaStatus::get(&status.lag_ms),
                reconnects = ReplicaStatus::get(&status.reconnects),
                rebootstraps = ReplicaStatus::get(&status.rebootstraps),
                "replica status"
            );
        }
        let ok = status.caught_up.load(Ordering::Relaxed)
            && ReplicaStatus::get(&status.lag_ms) <= config.max_lag.as_millis() as u64;
        if ok != *serving {
            *serving = ok;
            if ok {
                info!(revision = applied, "replica caught up: SERVING");
            } else {
                warn!(
                    lag_ms = ReplicaStatus::get(&status.lag_ms),
                    "replica lag over the bound: NOT_SERVING"
                );
            }
            health(ok).await;
        }
        if let Some(ended) = ended {
            return ended;
        }
    }
}

/// How far `then` is behind `now`, in milliseconds (times have second
/// resolution).
fn lag_ms(then: Timestamp, now: Timestamp) -> u64 {
    u64::try_from(now.unix().saturating_sub(then.unix()))
        .unwrap_or(0)
        .saturating_mul(1000)
}

enum Failure {
    /// The replica's state cannot take the change: bootstrap again.
    Diverged(String),
    /// Try again after reconnecting (a store failure, a gap).
    Retry(String),
}

async fn apply(engine: &Engine, changes: Vec<proto::Change>) -> Result<(), Failure> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut batch = Vec::with_capacity(changes.len());
    for change in changes {
        let revision = change.revision;
        let mutation: Mutation = serde_json::from_slice(&change.mutation).map_err(|e| {
            Failure::Retry(format!(
                "revision {revision} carries a mutation this build cannot read ({e}); is the leader a newer version?"
            ))
        })?;
        let time = if change.time.is_empty() {
            None
        } else {
            Timestamp::parse(&change.time).ok()
        };
        batch.push(Change {
            revision,
            time,
            mutation,
        });
    }
    match engine.replicate(batch).await {
        Ok(_) => Ok(()),
        Err(SubmitError::Refused(e)) => Err(Failure::Diverged(e.to_string())),
        Err(SubmitError::Store(StoreError::OutOfOrder { have, got })) => Err(Failure::Retry(
            format!("the leader sent revision {got} after {have}; watching again"),
        )),
        Err(e) => Err(Failure::Retry(e.to_string())),
    }
}

/// Reads the leader's export and installs it. Returns its revision.
async fn bootstrap(
    client: &mut ReplicationClient<AuthedChannel>,
    engine: &Engine,
) -> Result<u64, Ended> {
    let request = proto::ExportRequest {
        tenants: engine.scope().map(Scope::names).unwrap_or_default(),
    };
    let response = client
        .export(request)
        .await
        .map_err(|s| Ended::from_status(&s))?;
    if let Some(refused) = confined_answer(engine.scope(), response.metadata()) {
        return Err(refused);
    }
    let received = receive_export(&mut response.into_inner(), Origin::Leader)
        .await
        .map_err(|s| Ended::from_status(&s))?;
    let (state, history) = (received.state, received.history);
    engine
        .install(state, &history)
        .await
        .map_err(|e| Ended::Reconnect(e.to_string()))
}
