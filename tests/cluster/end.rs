//! The end of a run, once no one writes: revisions, changelog, live
//! Watch streams, digests, the audit log, and every writer's part of the
//! state on every node, against what the writers were told and what their
//! models say.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rampart::proto;
use serde_json::Value;

use super::model::{Model, SHARED_TENANTS};
use super::random::{OWN_TENANTS, USERS, own};
use super::verify::{Fixed, TenantShown, permissions, tenants};
use super::writer::{Ack, Ledger};
use super::{Conn, Watched};

/// What the final check found, for the report.
#[derive(Debug, Default)]
pub struct Final {
    pub head: u64,
    pub digest: String,
    pub changes: usize,
}

/// The end of a run, once no one writes: every node reaches the same
/// head with the same digest; the changelog has every revision once, the
/// same on every node; every acknowledged change is in it at its revision
/// as acknowledged; every revision after `setup` is a writer's
/// acknowledged change or one of its uncertain ones that landed; and every
/// writer's part of the state is on every node as its model says.
///
/// The audit log is checked too ([`audit_matches`]); `exact_refusals`:
/// no call was cut, so it holds exactly the refusals the writers heard.
/// `watched`: what each node's live Watch delivered from `setup` on,
/// which must be the changelog after `setup`, in order, once each.
pub async fn final_check(
    conns: &mut [Conn],
    ledger: &mut Ledger,
    models: &[Model],
    setup: u64,
    fixed: &Fixed,
    exact_refusals: bool,
    watched: &[Watched],
) -> Final {
    let mut report = Final::default();
    let mut head = 0;
    for c in conns.iter_mut() {
        head = head.max(c.state(false).await.unwrap().revision);
    }
    let mut states = Vec::new();
    for c in conns.iter_mut() {
        c.reach(head).await.unwrap();
        states.push(c.state(true).await.unwrap());
    }
    for (c, s) in conns.iter().zip(&states) {
        if s.revision != head || s.digest != states[0].digest || s.history != states[0].history {
            ledger.anomaly(format!(
                "port {}: revision {} digest {} history {}; port {}: revision {} digest {} history {}",
                c.port, s.revision, s.digest, s.history, conns[0].port, states[0].revision, states[0].digest, states[0].history
            ));
        }
    }
    report.head = head;
    report.digest = states[0].digest.clone();

    // The changelog, from each node.
    let mut logs = Vec::new();
    for c in conns.iter_mut() {
        match c.changelog(0, head).await {
            Ok(log) => logs.push(log),
            Err(e) => {
                ledger.anomaly(e.why);
                return report;
            }
        }
    }
    let log = &logs[0];
    report.changes = log.len();
    let revisions: Vec<u64> = log.iter().map(|c| c.revision).collect();
    if revisions != (1..=head).collect::<Vec<_>>() {
        let have: BTreeSet<u64> = revisions.iter().copied().collect();
        let missing: Vec<u64> = (1..=head).filter(|r| !have.contains(r)).take(20).collect();
        ledger.anomaly(format!(
            "the changelog does not hold 1..={head} once each: {} entries, missing (first 20) {missing:?}",
            revisions.len()
        ));
    }
    for (c, other) in conns.iter().zip(&logs).skip(1) {
        let same = other.len() == log.len()
            && other
                .iter()
                .zip(log)
                .all(|(a, b)| a.revision == b.revision && a.mutation == b.mutation);
        if !same {
            ledger.anomaly(format!(
                "port {}'s changelog differs from port {}'s",
                c.port, conns[0].port
            ));
        }
    }
    let by_revision: BTreeMap<u64, &proto::Change> = log.iter().map(|c| (c.revision, c)).collect();
    let expected: Vec<(u64, &[u8])> = by_revision
        .range(setup + 1..)
        .map(|(r, c)| (*r, c.mutation.as_slice()))
        .collect();
    for w in watched {
        let got: Vec<(u64, &[u8])> = w.changes.iter().map(|(r, m)| (*r, m.as_slice())).collect();
        if !w.out_of_order.is_empty() || got != expected {
            let first = got
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            ledger.anomaly(format!(
                "port {}'s live Watch delivered {} changes ({} reconnects), the changelog has {} after {setup}; first difference at position {first}; out of order: {:?}",
                w.port,
                got.len(),
                w.reconnects,
                expected.len(),
                w.out_of_order.iter().take(10).collect::<Vec<_>>()
            ));
        }
    }

    // Acknowledged (and landed) changes: once each, at their revision, as acknowledged.
    let mut explained: BTreeMap<u64, &Ack> = BTreeMap::new();
    let mut problems = Vec::new();
    for ack in ledger.acks.iter().chain(&ledger.landed) {
        if let Some(before) = explained.insert(ack.revision, ack) {
            problems.push(format!(
                "revision {} was acknowledged twice: to writer {} ({:?}) and to writer {} ({:?})",
                ack.revision, before.writer, before.op, ack.writer, ack.op
            ));
        }
        match by_revision.get(&ack.revision) {
            None => problems.push(format!(
                "acknowledged revision {} (writer {}, {:?}, by port {}) is not in the changelog: lost",
                ack.revision, ack.writer, ack.op, ack.port
            )),
            Some(entry) => {
                let stored: Value = serde_json::from_slice(&entry.mutation).unwrap_or(Value::Null);
                if stored != ack.change || !ack.op.matches(&stored) {
                    problems.push(format!(
                        "revision {}: acknowledged as {} ({:?}, writer {}, port {}), the changelog holds {stored}",
                        ack.revision, ack.change, ack.op, ack.writer, ack.port
                    ));
                }
            }
        }
    }
    // Every later revision is explained, and by the writer it names.
    for (revision, entry) in by_revision.range(setup + 1..) {
        let text = String::from_utf8_lossy(&entry.mutation).into_owned();
        let owners: Vec<usize> = models
            .iter()
            .enumerate()
            .filter(|(_, m)| text.contains(&m.prefix))
            .map(|(i, _)| i)
            .collect();
        match explained.get(revision) {
            None => problems.push(format!(
                "revision {revision} ({text}) was acknowledged to no one and settled by no writer"
            )),
            Some(ack) if owners != [ack.writer] => problems.push(format!(
                "revision {revision} ({text}) names writers {owners:?} but was writer {}'s",
                ack.writer
            )),
            Some(_) => {}
        }
    }
    for p in problems {
        ledger.anomaly(p);
    }
    audit_matches(&mut conns[0], ledger, &by_revision, head, exact_refusals).await;

    // Every writer's part of the state, on every node, at the head.
    let models = Arc::new(models.to_vec());
    let fixed = Arc::new(fixed.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for c in conns.iter() {
        let (mut c, models, fixed) = (c.clone(), Arc::clone(&models), Arc::clone(&fixed));
        tasks.spawn(async move { node_matches_models(&mut c, &models, &fixed, head).await });
    }
    while let Some(found) = tasks.join_next().await {
        for p in found.unwrap() {
            ledger.anomaly(p);
        }
    }
    report
}

/// Every writer's part of every tenant it may have touched, and the
/// permissions of each of its users there, as one node shows them at `head`.
pub async fn node_matches_models(
    conn: &mut Conn,
    models: &[Model],
    fixed: &Fixed,
    head: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let port = conn.port;
    let names = tenants(conn).await.unwrap();
    let mut shown: BTreeMap<String, Option<TenantShown>> = BTreeMap::new();
    let mut wanted: Vec<String> = SHARED_TENANTS.iter().map(|t| (*t).to_owned()).collect();
    for m in models {
        wanted.extend((0..OWN_TENANTS).map(|i| own(&m.prefix, 't', i)));
    }
    for t in wanted {
        let read = match names.get(&t) {
            Some(name) => TenantShown::read(conn, &t, name.clone()).await.unwrap(),
            None => None,
        };
        shown.insert(t, read);
    }
    let grants = |t: &str, r: &str| fixed.grants(t, r);
    for m in models {
        let mut tenants: Vec<String> = SHARED_TENANTS.iter().map(|t| (*t).to_owned()).collect();
        tenants.extend((0..OWN_TENANTS).map(|i| own(&m.prefix, 't', i)));
        for t in &tenants {
            let shared = SHARED_TENANTS.contains(&t.as_str());
            let part = shown[t].as_ref().map(|s| s.part(&m.prefix, shared));
            let expected = m.view(t);
            if part != expected {
                problems.push(format!(
                    "port {port}, writer {}, tenant {t}: the node shows {part:?}, the writer expects {expected:?}",
                    m.prefix
                ));
            }
            if expected.is_none() {
                continue;
            }
            for i in 0..USERS {
                let u = own(&m.prefix, 'u', i);
                let have = permissions(conn, t, &u, head).await.unwrap();
                let want = m.permissions(t, &u, &grants);
                if have != want {
                    problems.push(format!(
                        "port {port}: permissions of {u} in {t}: the node shows {have:?}, the writer expects {want:?}"
                    ));
                }
            }
        }
    }
    problems
}

/// The audit log, written by every node into the one database: its
/// sequence numbers are 1..=N once each; it records every revision of the
/// changelog once, as applied, with the same change; and every refusal a
/// writer heard (of each kind and code; exactly those when
/// `exact_refusals`, at least those when calls were cut by kills).
async fn audit_matches(
    conn: &mut Conn,
    ledger: &mut Ledger,
    log: &BTreeMap<u64, &proto::Change>,
    head: u64,
    exact_refusals: bool,
) {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = conn
            .admin
            .list_audit_log(proto::ListAuditLogRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut problems = Vec::new();
    let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    if seqs != (1..=entries.len() as u64).collect::<Vec<_>>() {
        problems.push(format!(
            "audit sequence numbers are not 1..={} once each",
            entries.len()
        ));
    }
    let mut applied: BTreeMap<u64, usize> = BTreeMap::new();
    let mut refused: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &entries {
        let change: Value = serde_json::from_str(&e.change).unwrap_or(Value::Null);
        match e.outcome.as_str() {
            "applied" => {
                *applied.entry(e.revision).or_default() += 1;
                let stored = log
                    .get(&e.revision)
                    .map(|c| serde_json::from_slice::<Value>(&c.mutation).unwrap_or(Value::Null));
                if stored.as_ref() != Some(&change) {
                    problems.push(format!(
                        "audit entry {} says {} was applied at revision {}; the changelog holds {stored:?}",
                        e.seq, e.change, e.revision
                    ));
                }
            }
            "refused" => {
                let kind = change.get("kind").and_then(Value::as_str).unwrap_or("?");
                *refused
                    .entry((kind.to_owned(), e.code.clone()))
                    .or_default() += 1;
            }
            other => problems.push(format!("audit entry {} has outcome {other:?}", e.seq)),
        }
    }
    let once: Vec<u64> = applied
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(r, _)| *r)
        .collect();
    if once != (1..=head).collect::<Vec<_>>() {
        let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).take(10).collect();
        let missing: Vec<u64> = (1..=head)
            .filter(|r| !applied.contains_key(r))
            .take(10)
            .collect();
        problems.push(format!(
            "the audit log does not record revisions 1..={head} as applied once each: missing {missing:?}, more than once {twice:?}"
        ));
    }
    let heard: BTreeMap<(String, String), usize> = ledger
        .refused_by_kind
        .iter()
        .map(|((kind, code), n)| (((*kind).to_owned(), code.clone()), *n))
        .collect();
    for key in heard.keys().chain(refused.keys()).collect::<BTreeSet<_>>() {
        let (h, a) = (
            heard.get(key).copied().unwrap_or(0),
            refused.get(key).copied().unwrap_or(0),
        );
        if a < h || (exact_refusals && a != h) {
            problems.push(format!(
                "refusals of {key:?}: the writers heard {h}, the audit log records {a}"
            ));
        }
    }
    for p in problems {
        ledger.anomaly(p);
    }
}
