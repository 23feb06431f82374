//! The store contract (ARCHITECTURE.md, "The store contract"): the same
//! behaviour tests run against `MemoryStore`, `SledStore` and `PgStore`
//! (through `Harness`; PostgreSQL's are skipped, saying so, where it is not
//! installed), then sled-only tests for what only a disk can do (reopen,
//! corrupt bytes, checkpoint layout) and PostgreSQL-only ones (schema
//! versions, two writers on one database).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rampart::model::{
    CatalogEntry, CatalogPattern, Grant, GrantPattern, GroupName, Mutation, RoleName, Stability,
    State, Subject, Tenant, TenantId, Timestamp, User, UserId, UserStatus, apply,
};
use rampart::store::{
    AuditFilter, AuditRecord, Change, MemoryStore, Outcome, Outcomes, PgStore, Recovery, Retention,
    SledStore, Store, StoreError,
};

// ---------------------------------------------------------------- fixtures

fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}
fn role(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}
fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn add_user(tenant: &str, id: &str) -> Mutation {
    Mutation::AddUser {
        tenant: t(tenant),
        user: user(id),
        email: Some(format!("{id}@example.org")),
        display_name: None,
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

/// A history touching tenants, roles, grants, groups, users, bindings, the
/// catalog and the bridge grants.
fn history() -> Vec<Mutation> {
    let mut out = Vec::new();
    for id in ["acme", "beta"] {
        out.push(Mutation::CreateTenant {
            tenant: t(id),
            name: format!("{id} Inc."),
            settings: Default::default(),
        });
    }
    out.push(Mutation::DefineCatalogEntry {
        entry: CatalogEntry {
            pattern: CatalogPattern::parse("documents:?DOC?").unwrap(),
            category: "documents".into(),
            description: "a document".into(),
            stability: Stability::Stable,
            builtin: false,
        },
    });
    out.push(Mutation::SetBridgesGrants {
        grants: vec![Grant::allow(GrantPattern::parse("documents:*").unwrap())],
    });
    out.push(Mutation::CreateRole {
        tenant: t("acme"),
        role: role("editors"),
        description: "edit things".into(),
    });
    out.push(Mutation::Grant {
        tenant: t("acme"),
        role: role("editors"),
        grant: Grant::allow(GrantPattern::parse("documents:*").unwrap()),
    });
    for u in ["alice", "bob", "carol"] {
        out.push(add_user("acme", u));
    }
    out.push(add_user("beta", "bob"));
    out.push(Mutation::CreateGroup {
        tenant: t("acme"),
        group: GroupName::new("eng").unwrap(),
        description: String::new(),
    });
    out.push(Mutation::AddMember {
        tenant: t("acme"),
        group: GroupName::new("eng").unwrap(),
        member: Subject::User(user("carol")),
    });
    out.push(Mutation::Assign {
        tenant: t("acme"),
        subject: Subject::User(user("alice")),
        role: role("editors"),
        expires: Some(Timestamp::from_unix(1_798_761_600)),
    });
    out.push(Mutation::Assign {
        tenant: t("acme"),
        subject: Subject::parse("group:eng").unwrap(),
        role: role("editors"),
        expires: None,
    });
    // Aliases, in both of bob's tenants: the alias index is derived data,
    // rebuilt when a checkpoint is read and kept by replay (`State`'s
    // equality compares it).
    out.push(Mutation::UpdateUserInfo {
        user: user("bob"),
        email: None,
        display_name: Some("Bob".into()),
        aliases: Some(vec![
            rampart::model::ids::Alias::new("spiffe://cluster.local/ns/x/sa/bob").unwrap(),
            rampart::model::ids::Alias::new("E-1001").unwrap(),
        ]),
        attributes: Some([("realm".to_owned(), "ldap".to_owned())].into()),
    });
    out.push(Mutation::RemoveUser {
        tenant: t("acme"),
        user: user("carol"),
    });
    out
}

/// The states after each prefix of `ms`: `states[r]` is at revision `r`.
fn states(ms: &[Mutation]) -> Vec<State> {
    let mut state = State::new();
    let mut out = vec![state.clone()];
    for m in ms {
        apply(&mut state, m).unwrap();
        out.push(state.clone());
    }
    out
}

fn record(m: &Mutation, actor: Option<&str>, outcome: Outcome, revision: u64) -> AuditRecord {
    AuditRecord {
        seq: 0,
        time: Timestamp::from_unix(1_700_000_000 + revision as i64),
        actor: actor.map(str::to_owned),
        credential: if actor.is_some() { "token" } else { "operator" }.into(),
        revision,
        tenant: m.tenant().map(ToString::to_string),
        also: Vec::new(),
        mutation: m.clone(),
        outcome,
    }
}

fn commit_all<S: Store>(store: &S, ms: &[Mutation], from: u64) {
    for (i, m) in ms.iter().enumerate() {
        let rev = from + i as u64 + 1;
        store
            .commit(rev, m, record(m, None, Outcome::Applied, rev))
            .unwrap();
    }
}

fn refused() -> Outcome {
    Outcome::Refused {
        code: "no_permission".into(),
        message: "no".into(),
    }
}

// ---------------------------------------------------------------- harness

/// Retries `open` while the folder is still locked: after the last handle
/// is dropped, sled's I/O threads may hold the log file open for a moment
/// longer (a new process never sees this; a reopen in the same one may).
fn retry_locked<T>(mut open: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match open() {
            Ok(v) => return v,
            Err(e) if e.contains("could not acquire lock") && start.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open: {e}"),
        }
    }
}

fn open_sled(dir: &Path) -> SledStore {
    retry_locked(|| SledStore::open(dir).map_err(|e| e.to_string()))
}

/// A store and a way to "restart" it: for sled, drop it and open the folder
/// again; for memory, keep it (nothing survives a real restart).
trait Harness {
    type S: Store;
    /// Several writers may share the store: a revision already taken is
    /// `Conflict` rather than `OutOfOrder`.
    const SHARED: bool = false;
    fn open(&mut self) -> Self::S;
    fn reopen(&mut self, old: Self::S) -> Self::S;
    fn recover(store: &Self::S) -> Recovery;
}

struct Memory;

impl Harness for Memory {
    type S = MemoryStore;
    fn open(&mut self) -> MemoryStore {
        MemoryStore::new()
    }
    fn reopen(&mut self, old: MemoryStore) -> MemoryStore {
        old
    }
    fn recover(store: &MemoryStore) -> Recovery {
        store.recover().unwrap()
    }
}

struct Sled(tempfile::TempDir);

impl Sled {
    fn new() -> Self {
        Sled(tempfile::tempdir().unwrap())
    }
}

impl Harness for Sled {
    type S = SledStore;
    fn open(&mut self) -> SledStore {
        open_sled(self.0.path())
    }
    fn reopen(&mut self, old: SledStore) -> SledStore {
        drop(old);
        self.open()
    }
    fn recover(store: &SledStore) -> Recovery {
        store.recover().unwrap()
    }
}

/// A fresh database in the test binary's PostgreSQL cluster; a restart
/// is a new connection.
struct Pg(String);

impl Pg {
    /// `None` (the test is skipped, and says so) without PostgreSQL.
    fn new() -> Option<Self> {
        common::postgres::database().map(Pg)
    }
}

impl Harness for Pg {
    type S = PgStore;
    const SHARED: bool = true;
    fn open(&mut self) -> PgStore {
        PgStore::connect(&self.0).unwrap()
    }
    fn reopen(&mut self, old: PgStore) -> PgStore {
        drop(old);
        self.open()
    }
    fn recover(store: &PgStore) -> Recovery {
        store.recover().unwrap()
    }
}

/// Whether `result` refuses revision `got` as already taken (the head is
/// `have`), as the store `T` says it.
fn taken<T: Harness>(result: Result<(), StoreError>, have: u64, got: u64) -> bool {
    match result {
        Err(StoreError::Conflict { have: h, got: g }) if T::SHARED => (h, g) == (have, got),
        Err(StoreError::OutOfOrder { have: h, got: g }) if !T::SHARED => (h, g) == (have, got),
        _ => false,
    }
}

/// Runs one behaviour test against every store.
macro_rules! all_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::$name(&mut super::Memory) } )*
        }
        mod sled {
            $( #[test] fn $name() { super::$name(&mut super::Sled::new()) } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                let Some(mut h) = super::Pg::new() else { return };
                super::$name(&mut h)
            } )*
        }
    };
}

all_stores!(
    an_empty_store_is_revision_zero,
    commits_survive_a_restart,
    the_changelog_pages,
    checkpoints_shorten_replay,
    checkpoints_must_not_run_ahead,
    out_of_order_revisions_are_refused,
    audit_filters_and_pages,
    audit_seq_keeps_increasing_across_restarts,
    an_entry_that_does_not_apply_is_corrupt,
    what_cannot_be_read_back_is_never_committed,
    compaction_keeps_what_recovery_needs,
    retention_bounds_compaction,
    install_replaces_the_state_and_the_history,
    append_takes_the_next_revision_without_audit,
    a_batch_commits_whole_or_not_at_all,
);

// ---------------------------------------------------------------- behaviour

fn an_empty_store_is_revision_zero<T: Harness>(h: &mut T) {
    let store = h.open();
    assert_eq!(store.load().unwrap(), State::new());
    assert_eq!(store.revision().unwrap(), 0);
    assert!(store.changelog(0, 0).unwrap().is_empty());
    assert!(store.audit(&AuditFilter::default()).unwrap().is_empty());
    store.flush().unwrap();
    let store = h.reopen(store);
    assert_eq!(store.load().unwrap(), State::new());
}

fn commits_survive_a_restart<T: Harness>(h: &mut T) {
    let ms = history();
    let expected = states(&ms);
    let store = h.open();
    commit_all(&store, &ms, 0);
    assert_eq!(store.load().unwrap(), expected[ms.len()]);
    let store = h.reopen(store);
    let n = ms.len() as u64;
    assert_eq!(store.revision().unwrap(), n);
    let recovery = T::recover(&store);
    assert_eq!(recovery.state, expected[ms.len()]);
    assert_eq!((recovery.checkpoint, recovery.replayed), (0, n));
    let audit = store.audit(&AuditFilter::default()).unwrap();
    assert_eq!(audit.len(), ms.len());
    for (i, r) in audit.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.revision, i as u64 + 1);
        assert_eq!(r.mutation, ms[i]);
        assert_eq!(r.outcome, Outcome::Applied);
    }
}

fn the_changelog_pages<T: Harness>(h: &mut T) {
    let ms = history();
    let store = h.open();
    commit_all(&store, &ms, 0);
    let all = store.changelog(0, 0).unwrap();
    let revisions: Vec<u64> = all.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, (1..=ms.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        all.iter().map(|c| c.mutation.clone()).collect::<Vec<_>>(),
        ms
    );
    assert!(
        all.iter().all(|c| c.time.is_some()),
        "commits keep their time"
    );
    let page = store.changelog(3, 2).unwrap();
    assert_eq!(
        page.iter()
            .map(|c| (c.revision, c.mutation.clone()))
            .collect::<Vec<_>>(),
        vec![(4, ms[3].clone()), (5, ms[4].clone())]
    );
    assert!(store.changelog(ms.len() as u64, 10).unwrap().is_empty());
    assert!(store.changelog(u64::MAX, 10).unwrap().is_empty());
}

fn checkpoints_shorten_replay<T: Harness>(h: &mut T) {
    let ms = history();
    let expected = states(&ms);
    let (n, k) = (ms.len(), 6);
    let store = h.open();
    commit_all(&store, &ms[..k], 0);
    store.checkpoint(&expected[k]).unwrap();
    commit_all(&store, &ms[k..], k as u64);
    // An older state changes nothing.
    store.checkpoint(&expected[k - 2]).unwrap();

    let store = h.reopen(store);
    let recovery = T::recover(&store);
    assert_eq!(recovery.state, expected[n]);
    assert_eq!(recovery.checkpoint, k as u64);
    assert_eq!(recovery.replayed, (n - k) as u64);
    assert_eq!(store.load().unwrap(), expected[n]);

    // A checkpoint at the last revision leaves nothing to replay.
    store.checkpoint(&expected[n]).unwrap();
    let store = h.reopen(store);
    let recovery = T::recover(&store);
    assert_eq!(recovery.state, expected[n]);
    assert_eq!((recovery.checkpoint, recovery.replayed), (n as u64, 0));
    // The changelog is kept whole for replicas.
    assert_eq!(store.changelog(0, 0).unwrap().len(), n);
}

fn checkpoints_must_not_run_ahead<T: Harness>(h: &mut T) {
    let ms = history();
    let expected = states(&ms);
    let store = h.open();
    commit_all(&store, &ms[..3], 0);
    assert!(matches!(
        store.checkpoint(&expected[4]),
        Err(StoreError::OutOfOrder { have: 3, got: 4 })
    ));
    let recovery = T::recover(&store);
    assert_eq!((recovery.checkpoint, recovery.replayed), (0, 3));
}

fn out_of_order_revisions_are_refused<T: Harness>(h: &mut T) {
    let ms = history();
    let store = h.open();
    let rec = |rev| record(&ms[0], None, Outcome::Applied, rev);
    assert!(matches!(
        store.commit(2, &ms[0], rec(2)),
        Err(StoreError::OutOfOrder { have: 0, got: 2 })
    ));
    assert!(matches!(
        store.commit(0, &ms[0], rec(0)),
        Err(StoreError::OutOfOrder { have: 0, got: 0 })
    ));
    store.commit(1, &ms[0], rec(1)).unwrap();
    assert!(taken::<T>(store.commit(1, &ms[1], rec(1)), 1, 1));
    assert!(matches!(
        store.commit(3, &ms[1], rec(3)),
        Err(StoreError::OutOfOrder { have: 1, got: 3 })
    ));
    // Nothing of the refused commits was written.
    assert_eq!(store.revision().unwrap(), 1);
    let log = store.changelog(0, 0).unwrap();
    assert_eq!(
        log.iter()
            .map(|c| (c.revision, c.mutation.clone()))
            .collect::<Vec<_>>(),
        vec![(1, ms[0].clone())]
    );
    assert_eq!(store.audit(&AuditFilter::default()).unwrap().len(), 1);
    // The store writes the revision into the record.
    store
        .commit(2, &ms[1], record(&ms[1], None, Outcome::Applied, 999))
        .unwrap();
    let last = store.audit(&AuditFilter::default()).unwrap().pop().unwrap();
    assert_eq!((last.seq, last.revision), (2, 2));
}

/// Commits `history()` with alternating actors and refusals in between;
/// returns the audit records in seq order as the store should hold them.
fn audited_history<S: Store>(store: &S) -> Vec<AuditRecord> {
    let ms = history();
    let mut expected = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        let rev = i as u64 + 1;
        // Tenants, the catalog and bridge grants are operator business.
        let actor = match (m.tenant().map(TenantId::as_str), m) {
            (_, Mutation::CreateTenant { .. }) | (None, _) => None,
            (Some("acme"), _) => Some("alice"),
            (Some(_), _) => Some("bob"),
        };
        let r = record(m, actor, Outcome::Applied, rev);
        store.commit(rev, m, r.clone()).unwrap();
        expected.push(AuditRecord {
            seq: expected.len() as u64 + 1,
            ..r
        });
        if i % 4 == 3 {
            // Bob tries something in acme and is refused at this revision.
            let attempt = add_user("acme", &format!("mallory{i}"));
            let r = record(&attempt, Some("bob"), refused(), rev);
            store.record_refusal(r.clone()).unwrap();
            expected.push(AuditRecord {
                seq: expected.len() as u64 + 1,
                ..r
            });
        }
    }
    expected
}

fn audit_filters_and_pages<T: Harness>(h: &mut T) {
    let store = h.open();
    let all = audited_history(&store);
    let store = h.reopen(store);
    let list = |f: AuditFilter| store.audit(&f).unwrap();
    let pick = |keep: &dyn Fn(&AuditRecord) -> bool| -> Vec<AuditRecord> {
        all.iter().filter(|r| keep(r)).cloned().collect()
    };
    assert_eq!(list(AuditFilter::default()), all);

    let acme = list(AuditFilter {
        tenant: Some("acme".into()),
        ..Default::default()
    });
    assert!(!acme.is_empty());
    // A tenant's records, and the deployment-wide ones that reach it too.
    assert_eq!(
        acme,
        pick(&|r| r.tenant.as_deref() == Some("acme") || r.mutation.is_deployment_wide())
    );
    assert!(acme.iter().any(|r| r.tenant.is_none()));

    let deployment = list(AuditFilter {
        tenant: Some(String::new()),
        ..Default::default()
    });
    assert_eq!(deployment, pick(&|r| r.tenant.is_none()));
    assert_eq!(deployment.len(), 3, "catalog, bridges, profile info");

    let operator = list(AuditFilter {
        actor: Some(String::new()),
        ..Default::default()
    });
    assert_eq!(operator, pick(&|r| r.actor.is_none()));
    assert!(!operator.is_empty());

    let bob = list(AuditFilter {
        actor: Some("bob".into()),
        ..Default::default()
    });
    assert_eq!(bob, pick(&|r| r.actor.as_deref() == Some("bob")));
    let bob_refused = bob
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Refused { .. }))
        .count();
    assert_eq!(bob_refused, history().len() / 4);

    let bob_in_acme = list(AuditFilter {
        tenant: Some("acme".into()),
        actor: Some("bob".into()),
        ..Default::default()
    });
    assert_eq!(bob_in_acme.len(), bob_refused, "only his refusals");

    let window = list(AuditFilter {
        from_revision: Some(4),
        to_revision: Some(8),
        ..Default::default()
    });
    assert_eq!(window, pick(&|r| (4..=8).contains(&r.revision)));
    assert_eq!(window.len(), 5 + 2, "five commits and two refusals");

    // Paging: `after_seq` + `limit`, with and without a filter.
    for filter in [
        AuditFilter::default(),
        AuditFilter {
            actor: Some("bob".into()),
            ..Default::default()
        },
    ] {
        let mut pages = Vec::new();
        let mut after = 0;
        loop {
            let page = list(AuditFilter {
                after_seq: after,
                limit: 2,
                ..filter.clone()
            });
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = last.seq;
            pages.extend(page);
        }
        assert_eq!(pages, list(filter));
    }
    let last = all.last().unwrap().seq;
    assert!(
        list(AuditFilter {
            after_seq: last,
            ..Default::default()
        })
        .is_empty()
    );
    assert!(
        list(AuditFilter {
            after_seq: u64::MAX,
            ..Default::default()
        })
        .is_empty()
    );
}

fn audit_seq_keeps_increasing_across_restarts<T: Harness>(h: &mut T) {
    let ms = history();
    let store = h.open();
    commit_all(&store, &ms[..2], 0);
    store
        .record_refusal(record(&ms[2], Some("bob"), refused(), 2))
        .unwrap();
    let store = h.reopen(store);
    store
        .record_refusal(record(&ms[2], Some("bob"), refused(), 2))
        .unwrap();
    commit_all(&store, &ms[2..3], 2);
    let seqs: Vec<u64> = store
        .audit(&AuditFilter::default())
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

fn an_entry_that_does_not_apply_is_corrupt<T: Harness>(h: &mut T) {
    let ms = history();
    let store = h.open();
    commit_all(&store, &ms[..2], 0);
    // The store does not validate; replay catches what does not apply.
    let bad = Mutation::CreateRole {
        tenant: t("nowhere"),
        role: role("r"),
        description: String::new(),
    };
    store
        .commit(3, &bad, record(&bad, None, Outcome::Applied, 3))
        .unwrap();
    let store = h.reopen(store);
    match store.load() {
        Err(StoreError::Corrupt { at, why }) => {
            assert_eq!(at, "changelog revision 3");
            assert!(why.contains("unknown tenant `nowhere`"), "{why}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn what_cannot_be_read_back_is_never_committed<T: Harness>(h: &mut T) {
    let ms = history();
    let store = h.open();
    commit_all(&store, &ms[..7], 0);
    // Year 10000: today `Timestamp` writes it as `@253402300800`, which it
    // cannot read. Either the store refuses it, or it must round-trip.
    let far = Mutation::Assign {
        tenant: t("acme"),
        subject: Subject::User(user("alice")),
        role: role("editors"),
        expires: Some(Timestamp::from_unix(253_402_300_800)),
    };
    let mut expected = states(&ms[..7]).pop().unwrap();
    match store.commit(8, &far, record(&far, None, Outcome::Applied, 8)) {
        Ok(()) => {
            apply(&mut expected, &far).unwrap();
        }
        Err(StoreError::Backend(why)) => {
            assert!(why.contains("would not read back"), "{why}");
            assert_eq!(store.revision().unwrap(), 7);
            assert_eq!(store.audit(&AuditFilter::default()).unwrap().len(), 7);
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
    // The same for an audit record's time, on a commit and on a refusal.
    let mut late = record(&ms[7], None, Outcome::Applied, 8);
    late.time = Timestamp::from_unix(253_402_300_800);
    let before = store.audit(&AuditFilter::default()).unwrap().len();
    let committed = store.commit(store.revision().unwrap() + 1, &ms[7], late.clone());
    let refused = store.record_refusal(late);
    for result in [&committed, &refused] {
        assert!(
            matches!(result, Ok(()) | Err(StoreError::Backend(_))),
            "{result:?}"
        );
    }
    if committed.is_ok() {
        apply(&mut expected, &ms[7]).unwrap();
    }
    let written = [&committed, &refused].iter().filter(|r| r.is_ok()).count();
    let store = h.reopen(store);
    assert_eq!(store.load().unwrap(), expected);
    let audit = store.audit(&AuditFilter::default()).unwrap();
    assert_eq!(audit.len(), before + written);
    assert_eq!(audit.last().unwrap().seq, audit.len() as u64);
}

// ---------------------------------------------------------------- sled only

/// Runs `f` on the raw sled database in `dir` (the store must be closed).
fn raw(dir: &Path, f: impl FnOnce(&::sled::Db)) {
    let db = retry_locked(|| ::sled::open(dir).map_err(|e| e.to_string()));
    f(&db);
    db.flush().unwrap();
}

fn expect_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, want_at: &str) {
    match result {
        Err(StoreError::Corrupt { at, .. }) => assert!(at.contains(want_at), "{at}"),
        other => panic!("expected Corrupt at {want_at}, got {other:?}"),
    }
}

#[test]
fn sled_garbage_in_the_changelog_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    let store = open_sled(dir.path());
    commit_all(&store, &ms[..4], 0);
    drop(store);
    raw(dir.path(), |db| {
        let log = db.open_tree("changelog").unwrap();
        log.insert(2u64.to_be_bytes(), &b"{\"kind\":\"nonsense\"}"[..])
            .unwrap();
        let audit = db.open_tree("audit").unwrap();
        audit.insert(3u64.to_be_bytes(), &[0xff, 0x00][..]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "changelog revision 2");
    expect_corrupt(store.changelog(0, 0), "changelog revision 2");
    assert_eq!(store.changelog(2, 0).unwrap().len(), 2);
    expect_corrupt(store.audit(&AuditFilter::default()), "audit seq 3");
    assert_eq!(
        store
            .audit(&AuditFilter {
                limit: 2,
                ..Default::default()
            })
            .unwrap()
            .len(),
        2
    );
    drop(store);

    raw(dir.path(), |db| {
        let meta = db.open_tree("meta").unwrap();
        meta.insert("revision", &b"x"[..]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.revision(), "meta `revision`");
    let m = &ms[4];
    expect_corrupt(
        store.commit(5, m, record(m, None, Outcome::Applied, 5)),
        "meta `revision`",
    );
}

#[test]
fn sled_a_gap_in_the_changelog_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    let store = open_sled(dir.path());
    commit_all(&store, &ms[..4], 0);
    drop(store);
    raw(dir.path(), |db| {
        db.open_tree("changelog")
            .unwrap()
            .remove(3u64.to_be_bytes())
            .unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "changelog revision 4");
}

#[test]
fn sled_changelog_and_meta_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    let expected = states(&ms);
    let store = open_sled(dir.path());
    commit_all(&store, &ms[..4], 0);
    store.checkpoint(&expected[3]).unwrap();
    drop(store);
    // An entry past the last revision, as no commit writes it (an
    // install that crashed before its cleanup leaves such): never
    // acknowledged, so dropped when the store opens.
    raw(dir.path(), |db| {
        let log = db.open_tree("changelog").unwrap();
        log.insert(5u64.to_be_bytes(), serde_json::to_vec(&ms[4]).unwrap())
            .unwrap();
    });
    let store = open_sled(dir.path());
    assert_eq!(store.load().unwrap(), expected[4]);
    assert_eq!(store.changelog(0, 0).unwrap().len(), 4);
    drop(store);
    // A `revision` past the changelog's end.
    raw(dir.path(), |db| {
        let meta = db.open_tree("meta").unwrap();
        meta.insert("revision", &5u64.to_be_bytes()[..]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "meta `revision`");
    drop(store);
    raw(dir.path(), |db| {
        let meta = db.open_tree("meta").unwrap();
        meta.insert("revision", &4u64.to_be_bytes()[..]).unwrap();
    });
    // A checkpoint pointer claiming an absurd header length.
    raw(dir.path(), |db| {
        let log = db.open_tree("changelog").unwrap();
        log.remove(5u64.to_be_bytes()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        let mut pointer = 3u64.to_be_bytes().to_vec();
        pointer.extend(u64::MAX.to_be_bytes());
        meta.insert("checkpoint", pointer).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "checkpoint 3 header");
    drop(store);
    raw(dir.path(), |db| {
        let meta = db.open_tree("meta").unwrap();
        meta.insert("checkpoint", &b"short"[..]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "meta `checkpoint`");
    expect_corrupt(store.checkpoint(&expected[4]), "meta `checkpoint`");
}

#[test]
fn sled_replay_starts_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    let expected = states(&ms);
    let store = open_sled(dir.path());
    commit_all(&store, &ms, 0);
    store.checkpoint(&expected[8]).unwrap();
    drop(store);
    // Garbage at or before the checkpoint is never read by recovery...
    raw(dir.path(), |db| {
        let log = db.open_tree("changelog").unwrap();
        for rev in 1..=8u64 {
            log.insert(rev.to_be_bytes(), &b"garbage"[..]).unwrap();
        }
    });
    let store = open_sled(dir.path());
    let recovery = store.recover().unwrap();
    assert_eq!(recovery.state, expected[ms.len()]);
    assert_eq!(recovery.checkpoint, 8);
    drop(store);
    // ...but right after it, it is.
    raw(dir.path(), |db| {
        let log = db.open_tree("changelog").unwrap();
        log.insert(9u64.to_be_bytes(), &b"garbage"[..]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "changelog revision 9");
}

/// A tenant with `n` users, each bound to a role and in a group.
fn big_tenant(id: &str, n: usize) -> Tenant {
    let mut tenant = Tenant::new(t(id), "Big");
    let readers = role("readers");
    let mut r = rampart::model::Role::new(readers.clone());
    r.grants
        .push(Grant::allow(GrantPattern::parse("documents:*").unwrap()));
    tenant.roles.insert(readers.clone(), r);
    let group = GroupName::new("everyone").unwrap();
    let mut members = std::collections::BTreeSet::new();
    for i in 0..n {
        let u = user(&format!("user{i:07}"));
        tenant.users.insert(
            u.clone(),
            User::new(u.clone())
                .with_email(Some(format!("user{i}@example.org")))
                .with_display_name(Some(format!("User {i}"))),
        );
        if i % 2 == 0 {
            members.insert(Subject::User(u.clone()));
        } else {
            let subject = Subject::User(u);
            tenant.bindings.insert(rampart::model::Binding {
                subject,
                role: readers.clone(),
                expires: None,
            });
        }
    }
    tenant.groups.insert(
        group.clone(),
        rampart::model::Group {
            name: group,
            description: String::new(),
            members: members.into_iter().collect(),
        },
    );
    tenant
}

/// `history()` committed, then a big tenant put straight into the state
/// (the store checkpoints whatever state it is given).
fn with_big_tenant(users: usize) -> (Vec<Mutation>, State) {
    let ms = history();
    let mut state = states(&ms).pop().unwrap();
    let big = big_tenant("big", users);
    state.tenants.insert(big.id.clone(), Arc::new(big));
    (ms, state)
}

fn checkpoint_revisions(dir: &Path) -> std::collections::BTreeSet<u64> {
    let mut revs = std::collections::BTreeSet::new();
    raw(dir, |db| {
        for key in db.open_tree("checkpoint").unwrap().iter().keys() {
            let key = key.unwrap();
            revs.insert(u64::from_be_bytes(key[..8].try_into().unwrap()));
        }
    });
    revs
}

#[test]
fn sled_a_checkpoint_changed_into_other_valid_json_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (ms, state) = with_big_tenant(3_000);
    let store = open_sled(dir.path());
    commit_all(&store, &ms, 0);
    store.checkpoint(&state).unwrap();
    drop(store);
    // One digit of a tenant part becomes another: still JSON, still a
    // tenant, but not the one written. Only the checksum can tell.
    raw(dir.path(), |db| {
        let tree = db.open_tree("checkpoint").unwrap();
        let keys: Vec<Vec<u8>> = tree.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        let key = &keys[keys.len() / 2];
        let mut value = tree.get(key).unwrap().unwrap().to_vec();
        let at = value.iter().position(u8::is_ascii_digit).unwrap();
        value[at] = if value[at] == b'9' {
            b'8'
        } else {
            value[at] + 1
        };
        tree.insert(key, value).unwrap();
    });
    let store = open_sled(dir.path());
    match store.load() {
        Err(StoreError::Corrupt { at, why }) => {
            assert!(at.starts_with("checkpoint"), "{at}");
            assert!(why.contains("checksum"), "{why}");
        }
        other => panic!("expected a checksum failure, got {other:?}"),
    }
}

#[test]
fn sled_a_checkpoint_header_changed_into_other_valid_json_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (ms, state) = with_big_tenant(50);
    let store = open_sled(dir.path());
    commit_all(&store, &ms, 0);
    store.checkpoint(&state).unwrap();
    drop(store);
    raw(dir.path(), |db| {
        let tree = db.open_tree("checkpoint").unwrap();
        // Part 0, chunk 0: the header's first bytes (`{"format":1,…`).
        let (key, value) = tree.iter().next().unwrap().unwrap();
        let mut value = value.to_vec();
        let at = value.iter().position(u8::is_ascii_digit).unwrap();
        value[at] = if value[at] == b'9' {
            b'8'
        } else {
            value[at] + 1
        };
        tree.insert(key, value).unwrap();
    });
    let store = open_sled(dir.path());
    match store.load() {
        Err(StoreError::Corrupt { at, why }) => {
            assert!(at.contains("header"), "{at}");
            assert!(why.contains("checksum"), "{why}");
        }
        other => panic!("expected a checksum failure, got {other:?}"),
    }
}

#[test]
fn sled_a_checkpoint_written_before_checksums_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (ms, state) = with_big_tenant(50);
    let store = open_sled(dir.path());
    commit_all(&store, &ms, 0);
    store.checkpoint(&state).unwrap();
    drop(store);
    // As an older rampart wrote it: a 16-byte pointer, and no `crc32` in
    // the header's part list (the header rewritten in one chunk).
    raw(dir.path(), |db| {
        let meta = db.open_tree("meta").unwrap();
        let pointer = meta.get("checkpoint").unwrap().unwrap();
        let revision = u64::from_be_bytes(pointer[..8].try_into().unwrap());
        let tree = db.open_tree("checkpoint").unwrap();
        let mut header = Vec::new();
        let mut keys = Vec::new();
        for item in
            tree.scan_prefix([&revision.to_be_bytes()[..], &0u32.to_be_bytes()[..]].concat())
        {
            let (k, v) = item.unwrap();
            header.extend_from_slice(&v);
            keys.push(k);
        }
        let mut doc: serde_json::Value = serde_json::from_slice(&header).unwrap();
        for part in doc["tenants"].as_array_mut().unwrap() {
            assert!(part.as_object_mut().unwrap().remove("crc32").is_some());
        }
        let old = serde_json::to_vec(&doc).unwrap();
        for k in keys {
            tree.remove(k).unwrap();
        }
        let mut key = revision.to_be_bytes().to_vec();
        key.extend(0u32.to_be_bytes());
        key.extend(0u32.to_be_bytes());
        tree.insert(key, old.clone()).unwrap();
        let mut short = revision.to_be_bytes().to_vec();
        short.extend((old.len() as u64).to_be_bytes());
        meta.insert("checkpoint", short).unwrap();
    });
    let store = open_sled(dir.path());
    assert_eq!(store.load().unwrap(), state);
}

#[test]
fn sled_a_large_checkpoint_spans_chunks_and_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ms, state) = with_big_tenant(3_000);
    let n = ms.len() as u64;
    let store = open_sled(dir.path());
    commit_all(&store, &ms[..5], 0);
    store.checkpoint(&states(&ms)[5]).unwrap();
    commit_all(&store, &ms[5..], 5);
    store.checkpoint(&state).unwrap();
    assert_eq!(store.checkpoint_revision().unwrap(), n);
    drop(store);
    assert_eq!(checkpoint_revisions(dir.path()), [n].into());
    // Chunks stay under sled's blob threshold: blob files are never fsynced.
    let blobs = std::fs::read_dir(dir.path().join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "sled wrote blob files");
    let store = open_sled(dir.path());
    let recovery = store.recover().unwrap();
    assert_eq!(recovery.state, state);
    assert_eq!((recovery.checkpoint, recovery.replayed), (n, 0));
    drop(store);

    // A lost chunk, and a damaged one, are reported, not half-loaded.
    let mut chunk_keys = Vec::new();
    raw(dir.path(), |db| {
        let tree = db.open_tree("checkpoint").unwrap();
        chunk_keys = tree.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        assert!(chunk_keys.len() > 20, "{} chunks", chunk_keys.len());
        tree.remove(&chunk_keys[chunk_keys.len() / 2]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), &format!("checkpoint {n}"));
    drop(store);
    raw(dir.path(), |db| {
        let tree = db.open_tree("checkpoint").unwrap();
        let key = &chunk_keys[chunk_keys.len() / 2];
        tree.insert(key, vec![b'x'; 4096]).unwrap();
    });
    let store = open_sled(dir.path());
    expect_corrupt(store.load(), "checkpoint");
}

#[test]
fn sled_leftovers_of_an_interrupted_checkpoint_are_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    let expected = states(&ms);
    let store = open_sled(dir.path());
    commit_all(&store, &ms, 0);
    store.checkpoint(&expected[3]).unwrap();
    drop(store);
    // A crash while writing checkpoint 7: chunks, no pointer.
    raw(dir.path(), |db| {
        let tree = db.open_tree("checkpoint").unwrap();
        for part in 0u32..3 {
            for chunk in 0u32..5 {
                let mut key = 7u64.to_be_bytes().to_vec();
                key.extend(part.to_be_bytes());
                key.extend(chunk.to_be_bytes());
                tree.insert(key, &b"half"[..]).unwrap();
            }
        }
    });
    assert_eq!(checkpoint_revisions(dir.path()), [3, 7].into());
    let store = open_sled(dir.path());
    // Recovery ignores them...
    assert_eq!(store.recover().unwrap().checkpoint, 3);
    // ...and checkpoint 7 proper replaces them.
    store.checkpoint(&expected[7]).unwrap();
    drop(store);
    assert_eq!(checkpoint_revisions(dir.path()), [7].into());
    let store = open_sled(dir.path());
    let recovery = store.recover().unwrap();
    assert_eq!(recovery.state, expected[ms.len()]);
    assert_eq!(recovery.checkpoint, 7);
}

#[test]
fn sled_commits_go_on_while_checkpoints_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sled(dir.path());
    let mut ms = vec![Mutation::CreateTenant {
        tenant: t("acme"),
        name: "Acme".into(),
        settings: Default::default(),
    }];
    ms.extend((0..150).map(|i| add_user("acme", &format!("u{i}"))));
    let expected = states(&ms);
    std::thread::scope(|s| {
        s.spawn(|| commit_all(&store, &ms, 0));
        s.spawn(|| {
            let mut done = 0;
            while done < ms.len() as u64 {
                let rev = store.revision().unwrap();
                store.checkpoint(&expected[rev as usize]).unwrap();
                done = rev;
            }
        });
    });
    drop(store);
    let store = open_sled(dir.path());
    let recovery = store.recover().unwrap();
    assert_eq!(recovery.state, expected[ms.len()]);
    assert_eq!(
        recovery.checkpoint + recovery.replayed,
        ms.len() as u64,
        "{recovery:?}"
    );
}

// ---------------------------------------------------------------- measure

/// Not a test: `cargo test --release --test store -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn measure_commits_and_checkpoints() {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("loadavg before: {}", loadavg.trim());

    let dir = tempfile::tempdir().unwrap();
    let store = open_sled(dir.path());
    let mut ms = vec![Mutation::CreateTenant {
        tenant: t("acme"),
        name: "Acme".into(),
        settings: Default::default(),
    }];
    let commits = 2_000;
    ms.extend((1..commits).map(|i| add_user("acme", &format!("u{i}"))));
    let start = Instant::now();
    let mut worst = std::time::Duration::ZERO;
    for (i, m) in ms.iter().enumerate() {
        let rev = i as u64 + 1;
        let one = Instant::now();
        store
            .commit(rev, m, record(m, Some("alice"), Outcome::Applied, rev))
            .unwrap();
        worst = worst.max(one.elapsed());
    }
    let took = start.elapsed();
    println!(
        "{commits} commits (flushed + fdatasync): {took:?}, {:.0}/s, worst {worst:?}",
        commits as f64 / took.as_secs_f64()
    );

    // What the extra fdatasync costs: raw sled, 2,000 small inserts.
    for sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = ::sled::open(dir.path()).unwrap();
        let log = std::fs::File::open(dir.path().join("db")).unwrap();
        let start = Instant::now();
        for i in 0..2_000u64 {
            db.insert(i.to_be_bytes(), vec![b'x'; 300]).unwrap();
            db.flush().unwrap();
            if sync {
                log.sync_data().unwrap();
            }
        }
        let took = start.elapsed();
        println!(
            "raw sled insert + flush{}: {:.0}/s",
            if sync { " + fdatasync" } else { "" },
            2_000.0 / took.as_secs_f64()
        );
    }

    for users in [100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_sled(dir.path());
        let (hist, state) = with_big_tenant(users);
        commit_all(&store, &hist, 0);
        let start = Instant::now();
        store.checkpoint(&state).unwrap();
        let cp = start.elapsed();
        // Commits while the next checkpoint (one revision later) is written.
        let first = add_user("acme", "x");
        let base = state.revision + 1;
        store
            .commit(base, &first, record(&first, None, Outcome::Applied, base))
            .unwrap();
        let mut next = state.clone();
        apply(&mut next, &first).unwrap();
        let mut last = next.clone();
        // Commit without pause until the checkpoint is done.
        let (during, cp2) = std::thread::scope(|s| {
            let bg = s.spawn(|| {
                let start = Instant::now();
                store.checkpoint(&next).unwrap();
                start.elapsed()
            });
            let mut lat = Vec::new();
            let mut rev = base;
            while !bg.is_finished() {
                rev += 1;
                let m = add_user("acme", &format!("x{rev}"));
                let one = Instant::now();
                store
                    .commit(rev, &m, record(&m, None, Outcome::Applied, rev))
                    .unwrap();
                lat.push(one.elapsed());
                apply(&mut last, &m).unwrap();
            }
            lat.sort();
            (lat, bg.join().unwrap())
        });
        drop(store);
        let size: u64 = walk_size(dir.path());
        let start = Instant::now();
        let store = open_sled(dir.path());
        let opened = start.elapsed();
        let recovery = store.recover().unwrap();
        let load = start.elapsed();
        assert_eq!(recovery.state, last);
        println!(
            "{users} users: checkpoint {cp:?}; reopen {opened:?}, open+load {load:?} \
             (replayed {}); folder {:.1} MiB; {} commits during the next checkpoint \
             ({cp2:?}): median {:?}, max {:?}",
            recovery.replayed,
            size as f64 / (1 << 20) as f64,
            during.len(),
            during[during.len() / 2],
            during[during.len() - 1],
        );
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("loadavg after: {}", loadavg.trim());
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            walk_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn compaction_keeps_what_recovery_needs<T: Harness>(h: &mut T) {
    let ms = history();
    let n = ms.len() as u64;
    let expected = states(&ms);
    let store = h.open();
    commit_all(&store, &ms, 0);
    assert_eq!(store.history().unwrap().first, 1);
    // Without a checkpoint, nothing can go: recovery replays from 1.
    assert_eq!(store.compact(n).unwrap(), 1);
    store.checkpoint(&expected[5]).unwrap();
    // Bounded by the checkpoint: entries after revision 5 stay.
    assert_eq!(store.compact(u64::MAX).unwrap(), 6);
    let h1 = store.history().unwrap();
    assert_eq!((h1.first, h1.last), (6, n));
    let log = store.changelog(0, 0).unwrap();
    assert_eq!(log.first().unwrap().revision, 6);
    assert_eq!(log.len() as u64, n - 5);
    assert_eq!(store.load().unwrap(), expected[n as usize]);
    // Compacting less than is gone changes nothing.
    assert_eq!(store.compact(3).unwrap(), 6);
    let store = h.reopen(store);
    assert_eq!(store.history().unwrap(), h1);
    assert_eq!(store.load().unwrap(), expected[n as usize]);
    assert_eq!(store.changelog(2, 1).unwrap()[0].revision, 6);
}

fn retention_bounds_compaction<T: Harness>(h: &mut T) {
    let ms = history();
    let n = ms.len() as u64;
    let expected = states(&ms);
    let store = h.open();
    commit_all(&store, &ms, 0);
    // `record` stamps revision r at 1_700_000_000 + r.
    let now = Timestamp::from_unix(1_700_000_000 + n as i64);
    let none = Retention::default();
    assert_eq!(
        none.cutoff(&store, now).unwrap(),
        1,
        "no bound, no compaction"
    );
    let last_two = Retention {
        revisions: Some(2),
        age: None,
    };
    // Bounded by the (absent) checkpoint first.
    assert_eq!(last_two.cutoff(&store, now).unwrap(), 1);
    store.checkpoint(&expected[n as usize]).unwrap();
    assert_eq!(last_two.cutoff(&store, now).unwrap(), n - 1);
    // Every entry is seconds old: an hour's age bound keeps them all, and
    // both bounds must agree before an entry goes.
    let hour = Retention {
        revisions: None,
        age: Some(std::time::Duration::from_secs(3600)),
    };
    assert_eq!(hour.cutoff(&store, now).unwrap(), 1);
    let both = Retention {
        revisions: Some(2),
        ..hour
    };
    assert_eq!(both.cutoff(&store, now).unwrap(), 1);
    let five = Retention {
        revisions: None,
        age: Some(std::time::Duration::from_secs(5)),
    };
    assert_eq!(five.cutoff(&store, now).unwrap(), n - 5);
    // An hour later, they are all older than the bound.
    let later = Timestamp::from_unix(now.unix() + 7200);
    assert_eq!(hour.cutoff(&store, later).unwrap(), n + 1);
    assert_eq!(both.cutoff(&store, later).unwrap(), n - 1);
    let first = store.compact(both.cutoff(&store, later).unwrap()).unwrap();
    assert_eq!(first, n - 1);
    assert_eq!(store.changelog(0, 0).unwrap().len(), 2);
}

fn install_replaces_the_state_and_the_history<T: Harness>(h: &mut T) {
    let ms = history();
    let n = ms.len() as u64;
    let expected = states(&ms);
    let store = h.open();
    commit_all(&store, &ms, 0);
    let before = store.history().unwrap();
    assert!(!before.id.is_empty());
    // Back to an older revision of another history (a leader restored from
    // a backup), then on from there.
    store.install(&expected[3], "restored").unwrap();
    assert_eq!(store.load().unwrap(), expected[3]);
    let after = store.history().unwrap();
    assert_eq!(
        (after.id.as_str(), after.first, after.last),
        ("restored", 4, 3)
    );
    assert!(store.changelog(0, 0).unwrap().is_empty());
    store
        .commit(4, &ms[3], record(&ms[3], None, Outcome::Applied, 4))
        .unwrap();
    // The audit log is kept whole.
    assert_eq!(
        store.audit(&AuditFilter::default()).unwrap().len() as u64,
        n + 1
    );
    let store = h.reopen(store);
    assert_eq!(store.load().unwrap(), expected[4]);
    assert_eq!(store.history().unwrap().id, "restored");
    let log = store.changelog(0, 0).unwrap();
    assert_eq!(log.iter().map(|c| c.revision).collect::<Vec<_>>(), [4]);
    // And forward, at the same revision as the checkpoint it replaces.
    store.install(&expected[4], "again").unwrap();
    let store = h.reopen(store);
    assert_eq!(store.load().unwrap(), expected[4]);
    assert_eq!(store.history().unwrap().id, "again");
    assert_eq!(store.checkpoint_revision().unwrap(), 4);
}

fn append_takes_the_next_revision_without_audit<T: Harness>(h: &mut T) {
    let ms = history();
    let expected = states(&ms);
    let store = h.open();
    let change = |revision: u64| Change {
        revision,
        time: Some(Timestamp::from_unix(1_700_000_000)),
        mutation: ms[revision as usize - 1].clone(),
    };
    store.append(&[change(1)]).unwrap();
    assert!(matches!(
        store.append(&[change(3)]),
        Err(StoreError::OutOfOrder { have: 1, got: 3 })
    ));
    // A batch is all or nothing: a gap inside refuses all of it.
    assert!(matches!(
        store.append(&[change(2), change(4)]),
        Err(StoreError::OutOfOrder { have: 2, got: 4 })
    ));
    assert_eq!(store.revision().unwrap(), 1);
    store.append(&[change(2), change(3)]).unwrap();
    store.append(&[]).unwrap();
    assert!(store.audit(&AuditFilter::default()).unwrap().is_empty());
    let store = h.reopen(store);
    assert_eq!(store.load().unwrap(), expected[3]);
    assert_eq!(
        store.changelog(0, 0).unwrap(),
        vec![change(1), change(2), change(3)]
    );
}

#[test]
fn sled_reads_changelog_entries_written_before_times_were_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    let expected = states(&ms);
    let store = open_sled(dir.path());
    commit_all(&store, &ms[..3], 0);
    drop(store);
    raw(dir.path(), |db| {
        let log = db.open_tree("changelog").unwrap();
        log.insert(2u64.to_be_bytes(), serde_json::to_vec(&ms[1]).unwrap())
            .unwrap();
    });
    let store = open_sled(dir.path());
    assert_eq!(store.load().unwrap(), expected[3]);
    let log = store.changelog(0, 0).unwrap();
    assert_eq!(log[1].time, None);
    assert_eq!(log[1].mutation, ms[1]);
    assert!(log[0].time.is_some());
}

#[test]
fn sled_history_ids_persist_and_differ_between_stores() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let id = open_sled(a.path()).history().unwrap().id;
    assert_eq!(id.len(), 32);
    assert_eq!(open_sled(a.path()).history().unwrap().id, id);
    assert_ne!(open_sled(b.path()).history().unwrap().id, id);
}

fn a_batch_commits_whole_or_not_at_all<T: Harness>(h: &mut T) {
    let ms = history();
    let expected = states(&ms);
    let store = h.open();
    let applied = |rev: u64| Outcomes::Applied {
        revision: rev,
        mutation: ms[rev as usize - 1].clone(),
        audit: record(&ms[rev as usize - 1], None, Outcome::Applied, rev),
    };
    let refused = Outcomes::Refused(record(
        &ms[0],
        Some("bob"),
        Outcome::Refused {
            code: "PERMISSION_DENIED".into(),
            message: "no".into(),
        },
        0,
    ));
    // A gap in the middle: nothing of the batch is written.
    let bad = [applied(1), refused.clone(), applied(3)];
    assert!(matches!(
        store.commit_batch(&bad),
        Err(StoreError::OutOfOrder { have: 1, got: 3 })
    ));
    assert_eq!(store.revision().unwrap(), 0);
    assert!(store.audit(&AuditFilter::default()).unwrap().is_empty());
    // In order, refusals between: one audit seq each, in batch order.
    store
        .commit_batch(&[applied(1), refused.clone(), applied(2), applied(3)])
        .unwrap();
    let store = h.reopen(store);
    assert_eq!(store.load().unwrap(), expected[3]);
    let audit = store.audit(&AuditFilter::default()).unwrap();
    let seqs: Vec<u64> = audit.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(audit[1].actor.as_deref(), Some("bob"));
    assert_eq!(
        audit.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [1, 0, 2, 3]
    );
}

/// A restart while the disk was full can leave sled's temporary snapshot
/// file (`snap.<lsn>.generating`, written then renamed to `snap.<lsn>`)
/// empty; sled then picks it as the newest snapshot and refuses to open.
#[test]
fn sled_an_empty_leftover_snapshot_file_does_not_stop_the_store_opening() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    {
        let store = open_sled(dir.path());
        commit_all(&store, &ms, 0);
        store.flush().unwrap();
    }
    // The name sled 0.34 gives it (pagecache/snapshot.rs, write_snapshot).
    let leftover = dir
        .path()
        .join(format!("snap.{:016X}.generating", u64::MAX >> 4));
    std::fs::File::create(&leftover).unwrap();
    let store = open_sled(dir.path());
    assert_eq!(store.revision().unwrap(), ms.len() as u64);
    assert_eq!(store.load().unwrap(), states(&ms).pop().unwrap());
    assert!(!leftover.exists(), "the leftover is removed");
}

/// A store that recovers less than it acknowledged (sled's `db` file cut
/// short) is refused, naming both revisions, instead of serving the past.
#[test]
fn sled_a_store_behind_its_recorded_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ms = history();
    {
        let store = open_sled(dir.path());
        commit_all(&store, &ms, 0);
    }
    let head = dir.path().join("head");
    let recorded = std::fs::read_to_string(&head).unwrap();
    assert_eq!(recorded.trim().parse::<u64>().unwrap(), ms.len() as u64);
    // As if the last acknowledged commits were lost from sled's files.
    std::fs::write(&head, format!("{:020}\n", ms.len() + 40)).unwrap();
    let err = retry_locked(|| match SledStore::open(dir.path()) {
        Ok(_) => Ok(None),
        Err(e) if e.to_string().contains("could not acquire lock") => Err(e.to_string()),
        Err(e) => Ok(Some(e)),
    })
    .expect("a store behind its head must not open");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
    assert!(
        text.contains(&format!("recovered revision {}", ms.len()))
            && text.contains(&format!("revision {} was acknowledged", ms.len() + 40)),
        "{text}"
    );
    assert!(
        text.contains("backup") && text.contains("delete the file `head`"),
        "{text}"
    );
    // The operator's way out: accept the loss.
    std::fs::remove_file(&head).unwrap();
    let store = open_sled(dir.path());
    assert_eq!(store.revision().unwrap(), ms.len() as u64);
}

/// The real thing: sled's `db` cut short. Whatever sled makes of it, the
/// store never opens at a revision below the one acknowledged.
#[test]
fn sled_a_truncated_db_file_never_opens_silently_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut ms = vec![Mutation::CreateTenant {
        tenant: t("acme"),
        name: "Acme".into(),
        settings: Default::default(),
    }];
    ms.extend((0..150).map(|i| add_user("acme", &format!("u{i}"))));
    {
        let store = open_sled(dir.path());
        commit_all(&store, &ms, 0);
    }
    let db = dir.path().join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let opened = retry_locked(|| match SledStore::open(dir.path()) {
        Ok(s) => Ok(Ok(s.revision().unwrap())),
        Err(e) if e.to_string().contains("could not acquire lock") => Err(e.to_string()),
        Err(e) => Ok(Err(e.to_string())),
    });
    match opened {
        Ok(revision) => assert_eq!(revision, ms.len() as u64, "opened behind its head"),
        Err(e) => assert!(e.contains("corrupt"), "{e}"),
    }
}

// ---------------------------------------------------------------- PostgreSQL only

/// The interrupted-bootstrap rule, for the stores that outlive a process:
/// a reopen before `finish_bootstrap` discards every commit since
/// `begin_bootstrap` and keeps the audit records from before.
fn an_interrupted_bootstrap_is_discarded<T: Harness>(h: &mut T) {
    let ms = history();
    let store = h.open();
    store
        .record_refusal(record(&ms[0], Some("bob"), refused(), 0))
        .unwrap();
    store.begin_bootstrap().unwrap();
    commit_all(&store, &ms[..4], 0);
    let store = h.reopen(store);
    assert_eq!(store.revision().unwrap(), 0);
    assert_eq!(store.load().unwrap(), State::new());
    assert!(store.changelog(0, 0).unwrap().is_empty());
    let audit = store.audit(&AuditFilter::default()).unwrap();
    assert_eq!(audit.len(), 1, "the refusal from before stays");
    // A finished bootstrap survives a restart, and a second one is refused.
    store.begin_bootstrap().unwrap();
    commit_all(&store, &ms[..4], 0);
    store.finish_bootstrap().unwrap();
    let store = h.reopen(store);
    assert_eq!(store.revision().unwrap(), 4);
    assert_eq!(
        store
            .audit(&AuditFilter::default())
            .unwrap()
            .last()
            .unwrap()
            .seq,
        5,
        "the discarded records' seqs are given again"
    );
    assert!(matches!(
        store.begin_bootstrap(),
        Err(StoreError::OutOfOrder { have: 4, got: 1 })
    ));
}

#[test]
fn sled_an_interrupted_bootstrap_is_discarded() {
    an_interrupted_bootstrap_is_discarded(&mut Sled::new());
}

#[test]
fn pg_an_interrupted_bootstrap_is_discarded() {
    let Some(mut h) = Pg::new() else { return };
    an_interrupted_bootstrap_is_discarded(&mut h);
}

#[test]
fn pg_a_schema_newer_than_this_build_is_refused() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    commit_all(&store, &history()[..2], 0);
    drop(store);
    let mut raw = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    raw.execute(
        "INSERT INTO rampart_schema (version) VALUES ($1)",
        &[&(rampart::store::postgres::SCHEMA_VERSION + 1)],
    )
    .unwrap();
    match PgStore::connect(&url) {
        Err(e @ StoreError::SchemaTooNew { .. }) => {
            let known = rampart::store::postgres::SCHEMA_VERSION;
            assert!(
                e.to_string().contains(&format!(
                    "version {}, newer than this rampart knows ({known})",
                    known + 1
                )),
                "{e}"
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Nothing was changed by the refused start.
    raw.execute("DELETE FROM rampart_schema WHERE version > 1", &[])
        .unwrap();
    assert_eq!(PgStore::connect(&url).unwrap().revision().unwrap(), 2);
}

/// Two stores on one database are two nodes: a commit of a revision the
/// other already took is `Conflict`, and writers racing on the head never
/// leave a gap or lose a commit they were told succeeded.
#[test]
fn pg_appending_is_compare_and_set_on_the_head() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let ms = history();
    let a = PgStore::connect(&url).unwrap();
    let b = PgStore::connect(&url).unwrap();
    assert_eq!(a.history().unwrap().id, b.history().unwrap().id);
    a.commit(1, &ms[0], record(&ms[0], None, Outcome::Applied, 1))
        .unwrap();
    let lost = b.commit(1, &ms[1], record(&ms[1], None, Outcome::Applied, 1));
    match lost {
        Err(e @ StoreError::Conflict { have: 1, got: 1 }) => {
            assert_eq!(
                rampart::model::HasKind::kind(&e),
                rampart::model::ErrorKind::Unavailable
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The loser catches up and commits the next revision.
    assert_eq!(b.revision().unwrap(), 1);
    b.commit(2, &ms[1], record(&ms[1], None, Outcome::Applied, 2))
        .unwrap();
    assert_eq!(a.load().unwrap(), states(&ms)[2]);
    // The losing attempt left no audit record.
    assert_eq!(a.audit(&AuditFilter::default()).unwrap().len(), 2);

    // Four writers race: each reads the head, tries head + 1, and on a
    // conflict reads again. Every acknowledged commit is in the changelog
    // exactly once, with no gap.
    let writers = 4;
    let each = 10;
    let won: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let url = url.clone();
                s.spawn(move || {
                    let store = PgStore::connect(&url).unwrap();
                    let mut mine = Vec::new();
                    let mut conflicts = 0;
                    while mine.len() < each {
                        let next = store.revision().unwrap() + 1;
                        let m = add_user("acme", &format!("w{w}-{}", mine.len()));
                        match store.commit(next, &m, record(&m, None, Outcome::Applied, next)) {
                            Ok(()) => mine.push(next),
                            Err(StoreError::Conflict { got, .. }) => {
                                assert_eq!(got, next);
                                conflicts += 1;
                                assert!(conflicts < 10_000, "no progress");
                            }
                            Err(e) => panic!("writer {w}: {e}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = won.into_iter().flatten().collect();
    all.sort_unstable();
    let total = (writers * each) as u64;
    assert_eq!(all, (3..3 + total).collect::<Vec<_>>());
    let log = a.changelog(2, 0).unwrap();
    assert_eq!(
        log.iter().map(|c| c.revision).collect::<Vec<_>>(),
        all,
        "gap-free, each once"
    );
    let audit = a.audit(&AuditFilter::default()).unwrap();
    assert_eq!(audit.len() as u64, 2 + total);
    assert!(audit.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
}

/// The `postgres` client runs its own runtime: it must work from
/// `store::blocking` inside a tokio runtime, and dropping the store in
/// async code must not panic.
#[test]
fn pg_works_from_blocking_threads_of_a_runtime() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(
            rampart::store::blocking(move || PgStore::connect(&url))
                .await
                .unwrap(),
        );
        let ms = history();
        let s = store.clone();
        let m = ms[0].clone();
        rampart::store::blocking(move || s.commit(1, &m, record(&m, None, Outcome::Applied, 1)))
            .await
            .unwrap();
        let s = store.clone();
        let state = rampart::store::blocking(move || s.load()).await.unwrap();
        assert_eq!(state, states(&ms)[1]);
        // The last handle dropped on an async worker.
        drop(store);
    });
}

#[test]
fn pg_an_unreachable_database_is_unavailable_naming_the_store() {
    // Nothing listens on a port just released: no PostgreSQL needed.
    let port = common::free_port();
    let url = format!("postgres://rampart@127.0.0.1:{port}/policy?connect_timeout=2");
    match PgStore::connect(&url) {
        Err(e @ StoreError::Backend(_)) => {
            assert_eq!(
                rampart::model::HasKind::kind(&e),
                rampart::model::ErrorKind::Unavailable
            );
            assert!(
                e.to_string().contains(&format!("127.0.0.1:{port}/policy")),
                "{e}"
            );
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    // A malformed URL is refused, without echoing a password.
    let bad = PgStore::connect("postgres://rampart:s3cret@127.0.0.1:notaport/db").unwrap_err();
    assert!(!bad.to_string().contains("s3cret"), "{bad}");
}

/// A database that goes away under a running store: writes and reads fail
/// as `Unavailable` naming the store, never a panic, and nothing
/// acknowledged is lost.
#[test]
fn pg_an_outage_fails_writes_as_unavailable() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let cluster = common::postgres::Cluster::start(programs).unwrap();
    let url = cluster.database();
    let ms = history();
    let store = PgStore::connect(&url).unwrap();
    commit_all(&store, &ms[..3], 0);
    cluster.stop();
    let write = store.commit(4, &ms[3], record(&ms[3], None, Outcome::Applied, 4));
    match write {
        Err(e @ StoreError::Backend(_)) => {
            assert_eq!(
                rampart::model::HasKind::kind(&e),
                rampart::model::ErrorKind::Unavailable
            );
            assert!(
                e.to_string()
                    .contains(&format!("127.0.0.1:{}", cluster.port)),
                "{e}"
            );
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    assert!(matches!(store.revision(), Err(StoreError::Backend(_))));
    assert!(matches!(store.load(), Err(StoreError::Backend(_))));
}

/// A bootstrap in progress on another node is not undone by a node that
/// starts meanwhile: that node refuses to start until it is done.
#[test]
fn pg_a_bootstrap_in_progress_elsewhere_is_left_alone() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let ms = history();
    let a = PgStore::connect(&url).unwrap();
    a.begin_bootstrap().unwrap();
    commit_all(&a, &ms[..3], 0);
    match PgStore::connect(&url) {
        Err(e @ StoreError::Backend(_)) => {
            assert!(
                e.to_string().contains("another node is bootstrapping it"),
                "{e}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        a.revision().unwrap(),
        3,
        "the bootstrap in progress is intact"
    );
    a.finish_bootstrap().unwrap();
    let b = PgStore::connect(&url).unwrap();
    assert_eq!(b.load().unwrap(), states(&ms)[3]);
    assert!(matches!(
        b.begin_bootstrap(),
        Err(StoreError::OutOfOrder { have: 3, got: 1 })
    ));
}
