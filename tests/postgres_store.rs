//! `PgStore` beyond the store contract (`tests/store.rs` runs that on every
//! backend): the wake-up one node hears when another commits
//! (LISTEN/NOTIFY), the bounded pool of connections, and a database that
//! restarts under an open store. Skipped, saying so, without PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rampart::model::{Mutation, TenantId};
use rampart::store::postgres::MAX_CONNECTIONS;
use rampart::store::{AuditFilter, Change, PgStore, Store};

fn tenant(n: u64) -> Change {
    Change {
        revision: n,
        time: None,
        mutation: Mutation::CreateTenant {
            tenant: TenantId::new(format!("t{n}")).unwrap(),
            name: format!("tenant {n}"),
            settings: Default::default(),
        },
    }
}

/// Waits (at most 20 s: this machine is noisy) until `heads` says at
/// least `revision`; returns what it says.
fn heard(heads: &tokio::sync::watch::Receiver<u64>, revision: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = *heads.borrow();
        if now >= revision || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_commit_on_one_node_wakes_the_others_with_its_revision() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let writer = PgStore::connect(&url).unwrap();
    let follower = PgStore::connect(&url).unwrap();
    let heads = follower.heads().expect("a PostgreSQL store can tell");
    // The listener reads the head when it connects: 0 on an empty store.
    assert_eq!(heard(&heads, 0), 0);
    for n in 1..=3 {
        writer.append(&[tenant(n)]).unwrap();
        assert_eq!(heard(&heads, n), n, "revision {n} was heard of");
    }
    // A batch notifies its last revision; what the follower hears is never
    // a revision that is not committed.
    writer.append(&[tenant(4), tenant(5)]).unwrap();
    assert_eq!(heard(&heads, 5), 5);
    assert!(*heads.borrow() <= writer.revision().unwrap());
    // The writer hears its own commits too (the follower skips them, as
    // its snapshot has them).
    assert_eq!(heard(&writer.heads().unwrap(), 5), 5);
}

#[test]
fn a_listener_that_starts_late_hears_the_head_at_once() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let writer = PgStore::connect(&url).unwrap();
    writer.append(&[tenant(1), tenant(2)]).unwrap();
    let follower = PgStore::connect(&url).unwrap();
    assert_eq!(heard(&follower.heads().unwrap(), 2), 2);
}

/// Counts the server processes connected to `url`'s database, other than
/// the counting one.
fn connections(counter: &mut postgres::Client) -> usize {
    let row = counter
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    usize::try_from(row.get::<_, i64>(0)).unwrap()
}

#[test]
fn one_node_opens_at_most_its_pool_of_connections_however_many_callers() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    store.append(&[tenant(1)]).unwrap();
    let mut counter = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let done = AtomicBool::new(false);
    let most = AtomicUsize::new(0);
    let calls = AtomicUsize::new(0);
    let callers = 4 * MAX_CONNECTIONS;
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(connections(&mut counter), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let workers: Vec<_> = (0..callers)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..20 {
                        // A read that holds its connection a while.
                        store.audit(&AuditFilter::default()).unwrap();
                        assert_eq!(store.changelog(0, 0).unwrap().len(), 1);
                        calls.fetch_add(2, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
    });
    assert_eq!(calls.load(Ordering::Relaxed), callers * 40);
    let most = most.load(Ordering::Relaxed);
    eprintln!("{callers} callers: at most {most} connections seen at once");
    assert!(
        (1..=MAX_CONNECTIONS).contains(&most),
        "{most} connections open at once, the pool holds {MAX_CONNECTIONS}"
    );
}

/// A database that restarts under an open store: the connections the pool
/// holds are closed; at most the one call that finds them so fails, then
/// the store reconnects by itself, and its listener tells of commits again.
#[test]
fn a_store_outlives_a_database_restart() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let cluster = common::postgres::Cluster::start(programs).unwrap();
    let url = cluster.database();
    let store = PgStore::connect(&url).unwrap();
    let other = PgStore::connect(&url).unwrap();
    let heads = store.heads().unwrap();
    // Several idle connections in the pool.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| store.audit(&AuditFilter::default()).unwrap());
        }
    });
    store.append(&[tenant(1)]).unwrap();
    assert_eq!(heard(&heads, 1), 1);

    cluster.stop();
    assert!(store.revision().is_err(), "the database is down");
    cluster.restart();
    let failed = (0..5)
        .map(|_| store.revision())
        .filter(Result::is_err)
        .count();
    assert!(failed <= 1, "{failed} calls failed after the restart");
    assert_eq!(store.revision().unwrap(), 1);
    // The other node writes (its pool, used just before the restart, may
    // fail one call too); the listener, reconnected, tells.
    if other.append(&[tenant(2)]).is_err() {
        other.append(&[tenant(2)]).unwrap();
    }
    assert_eq!(heard(&heads, 2), 2, "the listener reconnected");
}

/// A CA and a server certificate it signed for `127.0.0.1` and
/// `localhost`: (CA PEM, certificate PEM, key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "postgres");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (issuer.pem(), cert.pem(), key.serialize_pem())
}

/// Whether every session on `url`'s database but the asking one is TLS.
fn all_tls(url: &str) -> (i64, i64) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// With `sslmode=require` and the CA given, every connection (the pool's
/// and the listener's) is TLS; a CA that did not sign the server's
/// certificate is refused, naming the store; without `sslmode` (prefer) a
/// server that offers TLS gets TLS, verified too.
#[test]
fn a_store_over_tls_verifies_the_server_certificate() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let cluster = common::postgres::Cluster::start(programs).unwrap();
    let (ca, cert, key) = certificates();
    cluster.enable_tls(cert.as_bytes(), key.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let url = cluster.database();
    let required = format!("{url}?sslmode=require");

    let store = PgStore::connect_with(&required, Some(&ca_file)).unwrap();
    let heads = store.heads().unwrap();
    store.append(&[tenant(1)]).unwrap();
    assert_eq!(heard(&heads, 1), 1);
    let (sessions, tls) = all_tls(&url);
    assert!(sessions >= 2, "the pool's and the listener's: {sessions}");
    assert_eq!(tls, sessions, "every session is TLS");
    drop(store);

    // A CA that did not sign it.
    let (other, _, _) = certificates();
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, &other).unwrap();
    let refused = PgStore::connect_with(&required, Some(&wrong)).unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("PostgreSQL store"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    // The default (prefer) takes the TLS the server offers, verified.
    let preferred = PgStore::connect_with(&url, Some(&ca_file)).unwrap();
    assert_eq!(preferred.revision().unwrap(), 1);
    assert!(PgStore::connect_with(&url, Some(&wrong)).is_err());
    // A CA file with no certificate says so.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let message = PgStore::connect_with(&url, Some(&empty))
        .unwrap_err()
        .to_string();
    assert!(message.contains("no certificate"), "{message}");
}

fn applied(change: &Change) -> rampart::store::Outcomes {
    rampart::store::Outcomes::Applied {
        revision: change.revision,
        mutation: change.mutation.clone(),
        audit: rampart::store::AuditRecord {
            seq: 0,
            time: rampart::model::Timestamp::now(),
            actor: None,
            credential: "test".into(),
            revision: change.revision,
            tenant: None,
            also: Vec::new(),
            mutation: change.mutation.clone(),
            outcome: rampart::store::Outcome::Applied,
        },
    }
}

/// A node that lost the race holds the head: another node's commit waits
/// for it, and the holder's next commit lands in the hold, so the other
/// one, not the holder, loses. A hold given up lets the others on.
#[test]
fn a_held_head_makes_the_others_wait_and_the_holder_win() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let a = PgStore::connect(&url).unwrap();
    let b = PgStore::connect(&url).unwrap();
    a.append(&[tenant(1)]).unwrap();
    a.hold_head().unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(|| b.commit_batch(&[applied(&tenant(2))]));
        // Whenever B's commit runs, it cannot land while A holds the head.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            a.changelog(0, 0).unwrap().len(),
            1,
            "nothing landed during the hold"
        );
        a.commit_batch(&[applied(&tenant(2))]).unwrap();
        match other.join().unwrap() {
            Err(rampart::store::StoreError::Conflict { have: 2, got: 2 }) => {}
            other => panic!("B should lose revision 2: {other:?}"),
        }
    });
    assert_eq!(b.revision().unwrap(), 2);
    a.hold_head().unwrap();
    a.release_head();
    b.append(&[tenant(3)]).unwrap();
    assert_eq!(a.revision().unwrap(), 3);
}

/// One node at a time writes a checkpoint: while another holds the
/// checkpoint lock, a node's checkpoint is skipped (the pointer stays);
/// once it is free, the checkpoint is written.
#[test]
fn a_checkpoint_is_skipped_while_another_node_writes_one() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    store.append(&[tenant(1), tenant(2)]).unwrap();
    let state = store.load().unwrap();
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    other
        .execute(
            "SELECT pg_advisory_lock($1)",
            &[&rampart::store::postgres::CHECKPOINT_LOCK],
        )
        .unwrap();
    store.checkpoint(&state).unwrap();
    assert_eq!(store.checkpoint_revision().unwrap(), 0, "skipped");
    other
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&rampart::store::postgres::CHECKPOINT_LOCK],
        )
        .unwrap();
    store.checkpoint(&state).unwrap();
    assert_eq!(store.checkpoint_revision().unwrap(), 2, "written");
    assert_eq!(PgStore::connect(&url).unwrap().load().unwrap(), state);
}

/// Checkpoints are written in format 2 (binary tenant parts, the header
/// says so); one that an older rampart wrote (format 1: no `format` in the
/// header, JSON parts) still loads, and the next checkpoint is format 2.
#[test]
fn a_format_1_checkpoint_still_loads_and_the_next_is_binary() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let store = PgStore::connect(&url).unwrap();
    store.append(&[tenant(1), tenant(2)]).unwrap();
    let state = store.load().unwrap();
    store.checkpoint(&state).unwrap();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let parts = |db: &mut postgres::Client| -> Vec<(i32, Vec<u8>)> {
        db.query(
            "SELECT part, body FROM rampart_checkpoint WHERE revision = 2 ORDER BY part",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let written = parts(&mut db);
    let header: serde_json::Value = serde_json::from_slice(&written[0].1).unwrap();
    assert_eq!(header["format"], 2);
    assert_eq!(written.len(), 3);
    assert!(
        written[1..]
            .iter()
            .all(|(_, b)| rampart::store::image::binary::is_binary(b))
    );

    // As the previous rampart wrote it.
    let mut old = header.clone();
    old.as_object_mut().unwrap().remove("format");
    let old_parts: Vec<Vec<u8>> = std::iter::once(serde_json::to_vec(&old).unwrap())
        .chain(
            state
                .tenants
                .values()
                .map(|t| rampart::store::image::encode_tenant(t).unwrap()),
        )
        .collect();
    for (part, body) in old_parts.iter().enumerate() {
        db.execute(
            "UPDATE rampart_checkpoint SET body = $1 WHERE revision = 2 AND part = $2",
            &[body, &(part as i32)],
        )
        .unwrap();
    }
    let reopened = PgStore::connect(&url).unwrap();
    assert_eq!(reopened.load().unwrap(), state);

    // A damaged binary part is refused, naming the part (PostgreSQL keeps
    // no checksum of its own: the image's is what catches it).
    reopened.append(&[tenant(3)]).unwrap();
    let next = reopened.load().unwrap();
    reopened.checkpoint(&next).unwrap();
    let mut flipped = db
        .query_one(
            "SELECT body FROM rampart_checkpoint WHERE revision = 3 AND part = 2",
            &[],
        )
        .unwrap()
        .get::<_, Vec<u8>>(0);
    assert!(rampart::store::image::binary::is_binary(&flipped));
    let n = flipped.len() / 2;
    flipped[n] ^= 1;
    db.execute(
        "UPDATE rampart_checkpoint SET body = $1 WHERE revision = 3 AND part = 2",
        &[&flipped],
    )
    .unwrap();
    match PgStore::connect(&url).unwrap().load() {
        Err(rampart::store::StoreError::Corrupt { at, why }) => {
            assert_eq!(at, "checkpoint 3 part 2");
            assert!(why.contains("checksum"), "{why}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
