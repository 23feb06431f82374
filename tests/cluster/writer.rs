//! A writer: submits random ops to random nodes, one at a time, and
//! writes down in the shared [`Ledger`] what each became: acknowledged
//! (revision and change), refused (by which code), or uncertain (the node
//! went away mid-call, or answered UNAVAILABLE). An uncertain op is settled
//! before the next: the writer commits a fence (a fresh group of its own,
//! always accepted), after which the uncertain op can no longer land (the
//! store commits on its head under a row lock, so a later commit orders
//! after it or makes it fail), and reads the changelog between its last
//! change and the fence for its own entries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tonic::Code;

use super::model::{Model, Role};
use super::ops::Op;
use super::random::{Rng, next_op};
use super::verify::{Fixed, verify_op};
use super::{Conn, transport};

/// The tenant the fences (and each writer's anchor role) live in.
pub const FENCE_TENANT: &str = "north";

/// An acknowledged change, or an uncertain one found in the changelog.
#[derive(Debug, Clone)]
pub struct Ack {
    pub revision: u64,
    pub writer: usize,
    /// The port of the node that acknowledged it (0: found later).
    pub port: u16,
    /// The change as the node said it recorded it.
    pub change: Value,
    pub op: Op,
}

/// What every writer saw, for the final checks and the report.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acks: Vec<Ack>,
    /// Uncertain ops that the changelog shows did land.
    pub landed: Vec<Ack>,
    /// Uncertain ops that did not land.
    pub not_landed: usize,
    /// Refusals by the rules, by code.
    pub refused: BTreeMap<String, usize>,
    /// Refusals by the rules, by op kind and code (as the audit log names it).
    pub refused_by_kind: BTreeMap<(&'static str, String), usize>,
    /// UNAVAILABLE answered by a node (not a broken connection).
    pub unavailable: usize,
    /// UNAVAILABLE answers that the changelog shows did land anyway.
    pub unavailable_landed: usize,
    /// Calls cut by the transport (a killed node, a refused connection).
    pub transport: usize,
    /// Of those, calls sent while their node was up (in flight at a kill).
    pub in_flight_at_kill: usize,
    pub fences: usize,
    /// Reads that confirmed an acknowledged change on some node.
    pub verified: usize,
    /// Of those, on every running node.
    pub verified_everywhere: usize,
    /// Verifications skipped because the node went away.
    pub verify_skipped: usize,
    pub anomalies: Vec<String>,
}

impl Ledger {
    pub fn anomaly(&mut self, what: String) {
        eprintln!("ANOMALY: {what}");
        self.anomalies.push(what);
    }
}

/// What the writers share: the nodes, which are up, how many ops remain.
pub struct Shared {
    /// One entry per node: its port, and whether the killer has it up.
    pub ports: Vec<u16>,
    pub up: Vec<AtomicBool>,
    /// Random ops submitted so far, across writers.
    pub submitted: AtomicUsize,
    /// Stop after this many random ops (fences not counted).
    pub total: usize,
    /// Set to stop early (the kill test stops when its cycles are done).
    pub stop: AtomicBool,
    pub ledger: Mutex<Ledger>,
    pub fixed: Fixed,
    /// Whether nodes are killed (a transport failure is expected then).
    pub kills: bool,
    /// Verify every acknowledged change on one random node, and every
    /// `everywhere_every`-th of each writer on every node.
    pub everywhere_every: usize,
}

pub struct Writer {
    pub index: usize,
    pub prefix: String,
    pub model: Model,
    rng: Rng,
    /// One connection per node, of this writer's own.
    conns: Vec<Conn>,
    /// The revision of this writer's last change in the changelog.
    last: u64,
    fences: usize,
    acked: usize,
}

/// A writer's name prefix: `w03-`.
pub fn prefix(index: usize) -> String {
    format!("w{index:02}-")
}

/// The anchor role every writer gets in [`FENCE_TENANT`] during setup, so
/// its model starts with something to compare in every shared tenant.
pub fn anchor(prefix: &str) -> String {
    format!("{prefix}anchor")
}

impl Writer {
    /// Writer `index`, whose state so far is the anchor role made at setup
    /// (revision `setup` and before). Call from within the runtime.
    pub fn new(index: usize, seed: u64, shared: &Shared, setup: u64) -> Self {
        let prefix = prefix(index);
        let mut model = Model::new(&prefix);
        model.tenants.get_mut(FENCE_TENANT).unwrap().roles.insert(
            anchor(&prefix),
            Role {
                description: "anchor".into(),
                grants: Vec::new(),
            },
        );
        Self {
            index,
            prefix,
            model,
            rng: Rng::new(seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            conns: shared.ports.iter().map(|p| Conn::lazy(*p)).collect(),
            last: setup,
            fences: 0,
            acked: 0,
        }
    }

    /// A node the killer has up, at random (waits while none is).
    async fn pick_node(&mut self, shared: &Shared) -> usize {
        loop {
            let up: Vec<usize> = (0..self.conns.len())
                .filter(|i| shared.up[*i].load(Ordering::SeqCst))
                .collect();
            if !up.is_empty() {
                return *self.rng.pick(&up);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Submits random ops until the shared budget is spent or `stop` is
    /// set; returns the writer's final model.
    pub async fn run(mut self, shared: Arc<Shared>) -> Model {
        while !shared.stop.load(Ordering::SeqCst)
            && shared.submitted.fetch_add(1, Ordering::SeqCst) < shared.total
        {
            let (op, actor) = next_op(&self.model, &mut self.rng);
            self.submit(&shared, op, actor).await;
        }
        self.model
    }

    async fn submit(&mut self, shared: &Shared, op: Op, actor: Option<String>) {
        let node = self.pick_node(shared).await;
        let predicted = self.model.predict(&op);
        let who = actor.clone().unwrap_or_default();
        let up_at_send = shared.up[node].load(Ordering::SeqCst);
        let answer = op.send(&mut self.conns[node].admin, &who).await;
        let port = shared.ports[node];
        let what = || format!("writer {} on port {port}: {op:?} as {who:?}", self.index);
        match answer {
            Ok(done) => {
                let change: Value = serde_json::from_str(&done.change).unwrap_or(Value::Null);
                if let Err(code) = predicted {
                    shared.ledger.lock().unwrap().anomaly(format!(
                        "{} was accepted at revision {}, but this writer's state says it must be refused with {code:?}: the node validated it against a stale state?",
                        what(),
                        done.revision
                    ));
                }
                self.acknowledged(shared, node, op, done.revision, change)
                    .await;
            }
            Err(status) if transport(&status) => {
                {
                    let mut ledger = shared.ledger.lock().unwrap();
                    ledger.transport += 1;
                    ledger.in_flight_at_kill += usize::from(up_at_send);
                    if !shared.kills {
                        ledger.anomaly(format!(
                            "{}: the call failed in the transport with no node killed: {status}",
                            what()
                        ));
                    }
                }
                self.settle(shared, vec![op], false).await;
            }
            Err(status) if status.code() == Code::Unavailable => {
                shared.ledger.lock().unwrap().unavailable += 1;
                eprintln!("UNAVAILABLE: {}: {}", what(), status.message());
                self.settle(shared, vec![op], true).await;
            }
            Err(status) => {
                let code = status.code();
                let proper = matches!(
                    code,
                    Code::PermissionDenied
                        | Code::FailedPrecondition
                        | Code::InvalidArgument
                        | Code::NotFound
                        | Code::AlreadyExists
                );
                if !proper {
                    shared.ledger.lock().unwrap().anomaly(format!(
                        "{} was answered {code:?}, not a refusal by a rule: {}",
                        what(),
                        status.message()
                    ));
                    self.settle(shared, vec![op], false).await;
                    return;
                }
                let mut ledger = shared.ledger.lock().unwrap();
                *ledger.refused.entry(format!("{code:?}")).or_default() += 1;
                *ledger
                    .refused_by_kind
                    .entry((op.kind(), code_name(code)))
                    .or_default() += 1;
                // The operator's refusals are predictable; an actor's may
                // come from its rights, which the model does not judge.
                match (actor.is_none(), predicted) {
                    (true, Ok(())) => ledger.anomaly(format!(
                        "{} was refused with {code:?} ({}), but this writer's state says it applies: the node validated it against a stale state?",
                        what(),
                        status.message()
                    )),
                    (true, Err(expected)) if expected != code => ledger.anomaly(format!(
                        "{} was refused with {code:?} ({}), expected {expected:?}",
                        what(),
                        status.message()
                    )),
                    _ => {}
                }
            }
        }
    }

    /// Records an acknowledged op, applies it to the model and checks, on
    /// one node or on every node, that it shows at its revision.
    async fn acknowledged(
        &mut self,
        shared: &Shared,
        node: usize,
        op: Op,
        revision: u64,
        change: Value,
    ) {
        {
            let mut ledger = shared.ledger.lock().unwrap();
            if !op.matches(&change) {
                ledger.anomaly(format!(
                    "writer {}: the node recorded {change} for {op:?}",
                    self.index
                ));
            }
            if revision <= self.last {
                ledger.anomaly(format!(
                    "writer {}: {op:?} acknowledged at revision {revision}, not after this writer's previous change at {}",
                    self.index, self.last
                ));
            }
            ledger.acks.push(Ack {
                revision,
                writer: self.index,
                port: shared.ports[node],
                change,
                op: op.clone(),
            });
        }
        self.model.apply(&op);
        self.last = revision;
        self.acked += 1;
        let everywhere = self.acked.is_multiple_of(shared.everywhere_every);
        let targets: Vec<usize> = if everywhere {
            (0..self.conns.len()).collect()
        } else {
            vec![self.rng.below(self.conns.len())]
        };
        let mut confirmed = 0;
        for target in &targets {
            if !shared.up[*target].load(Ordering::SeqCst) {
                shared.ledger.lock().unwrap().verify_skipped += 1;
                continue;
            }
            match verify_op(&mut self.conns[*target], revision, &op, &self.model, &shared.fixed).await {
                Ok(true) => confirmed += 1,
                Ok(false) => shared.ledger.lock().unwrap().verify_skipped += 1,
                Err(e) => shared.ledger.lock().unwrap().anomaly(format!(
                    "writer {}: {op:?} acknowledged at revision {revision} by port {}, read on port {}: {e}",
                    self.index, shared.ports[node], shared.ports[*target]
                )),
            }
        }
        let mut ledger = shared.ledger.lock().unwrap();
        ledger.verified += usize::from(confirmed > 0);
        ledger.verified_everywhere += usize::from(everywhere && confirmed == targets.len());
    }

    /// Settles uncertain ops: commits a fence, then reads the changelog
    /// between this writer's last change and the fence for its own
    /// entries, which must be some of `pending`, in order. `unavailable`:
    /// the first was answered UNAVAILABLE (it should not have landed).
    async fn settle(&mut self, shared: &Shared, mut pending: Vec<Op>, unavailable: bool) {
        let started = Instant::now();
        let (node, fence, revision, change) = loop {
            if started.elapsed() > Duration::from_secs(180) {
                shared.ledger.lock().unwrap().anomaly(format!(
                    "writer {}: no node committed a fence within 180 s",
                    self.index
                ));
                return;
            }
            self.fences += 1;
            let fence = Op::CreateGroup {
                t: FENCE_TENANT.into(),
                g: format!("{}f{}", self.prefix, self.fences),
            };
            let node = self.pick_node(shared).await;
            match fence.send(&mut self.conns[node].admin, "").await {
                Ok(done) => {
                    let change = serde_json::from_str(&done.change).unwrap_or(Value::Null);
                    break (node, fence, done.revision, change);
                }
                Err(status) if transport(&status) || status.code() == Code::Unavailable => {
                    pending.push(fence);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => {
                    shared.ledger.lock().unwrap().anomaly(format!(
                        "writer {}: fence {fence:?} refused: {status}",
                        self.index
                    ));
                    pending.push(fence);
                }
            }
        };
        shared.ledger.lock().unwrap().fences += 1;
        // Read on the node that committed the fence; if it goes away
        // meanwhile (killed), on another.
        let mut reader = node;
        let between = loop {
            match self.conns[reader].changelog(self.last, revision - 1).await {
                Err(e) if e.gone && started.elapsed() < Duration::from_secs(180) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    reader = self.pick_node(shared).await;
                }
                read => break read,
            }
        };
        {
            let mut ledger = shared.ledger.lock().unwrap();
            match between {
                Err(e) => {
                    ledger.anomaly(format!("writer {}: settling {pending:?}: {e}", self.index))
                }
                Ok(entries) => {
                    let mut next = 0;
                    let mut landed = 0;
                    let mut landed_first = false;
                    for entry in entries {
                        let text = String::from_utf8_lossy(&entry.mutation);
                        if !text.contains(&self.prefix) {
                            continue;
                        }
                        let json: Value =
                            serde_json::from_slice(&entry.mutation).unwrap_or(Value::Null);
                        let Some(at) = (next..pending.len()).find(|i| pending[*i].matches(&json))
                        else {
                            ledger.anomaly(format!(
                            "writer {}: revision {} is this writer's ({text}) but none of {pending:?} still pending",
                            self.index, entry.revision
                        ));
                            continue;
                        };
                        landed_first |= at == 0;
                        let op = pending[at].clone();
                        if let Err(code) = self.model.predict(&op) {
                            ledger.anomaly(format!(
                            "writer {}: {op:?} landed at revision {} though this writer's state says {code:?}",
                            self.index, entry.revision
                        ));
                        }
                        self.model.apply(&op);
                        ledger.landed.push(Ack {
                            revision: entry.revision,
                            writer: self.index,
                            port: 0,
                            change: json,
                            op,
                        });
                        next = at + 1;
                        landed += 1;
                    }
                    ledger.not_landed += pending.len() - landed;
                    if unavailable && landed_first {
                        ledger.unavailable_landed += 1;
                        ledger.anomaly(format!(
                            "writer {}: {:?} was answered UNAVAILABLE but was committed",
                            self.index, pending[0]
                        ));
                    }
                }
            }
        }
        self.acknowledged(shared, node, fence, revision, change)
            .await;
    }
}

/// The gRPC code as the audit log names it.
fn code_name(code: Code) -> String {
    match code {
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        _ => "OTHER",
    }
    .to_owned()
}
