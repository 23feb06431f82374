//! The sled checkpoint's formats (ARCHITECTURE.md, "The sled store"): a
//! store whose checkpoint an older rampart wrote (format 1, JSON tenant
//! parts) still loads, and its next checkpoint is written in format 2
//! (binary tenant parts); a damaged binary part is a `Corrupt` error
//! naming the checkpoint, the part and what is wrong, never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rampart::model::{
    Binding, Grant, GrantPattern, Group, GroupName, Mutation, Role, RoleName, State, Subject,
    Tenant, TenantId, Timestamp, User, UserId, UserStatus,
};
use rampart::store::image::{self, binary};
use rampart::store::{AuditRecord, Outcome, SledStore, Store, StoreError};
use serde_json::Value;

const CHUNK: usize = 4 * 1024;

fn open(dir: &Path) -> SledStore {
    let start = Instant::now();
    loop {
        match SledStore::open(dir) {
            Ok(s) => return s,
            Err(e) if start.elapsed().as_secs() < 10 && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open: {e}"),
        }
    }
}

fn raw_db(dir: &Path) -> ::sled::Db {
    let start = Instant::now();
    loop {
        match ::sled::open(dir) {
            Ok(db) => return db,
            Err(e) if start.elapsed().as_secs() < 10 => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open: {e}"),
        }
    }
}

/// A tenant of `n` users, in groups, bound to roles, some expiring, a few
/// with aliases and attributes.
fn tenant(id: &str, n: usize) -> Tenant {
    let mut t = Tenant::new(TenantId::new(id).unwrap(), format!("Tenant {id}"));
    t.settings.shared_users = true;
    let readers = RoleName::new("readers").unwrap();
    let mut role = Role::new(readers.clone());
    role.grants = vec![
        Grant::allow(GrantPattern::parse("documents:*").unwrap()),
        Grant::deny(GrantPattern::parse("documents:delete").unwrap()),
    ];
    t.roles.insert(readers.clone(), role);
    let group = GroupName::new("everyone").unwrap();
    let mut members = imbl::OrdSet::new();
    for i in 0..n {
        let u = UserId::new(format!("user{i:06}")).unwrap();
        let mut user = User::new(u.clone());
        user.set_email(Some(format!("{u}@example.org")));
        if i % 7 == 0 {
            user.status = UserStatus::Inactive;
        }
        if i % 50 == 0 {
            user.set_aliases(
                [rampart::model::ids::Alias::new(format!("spiffe://x/{i}")).unwrap()].into(),
            );
            user.set_attributes([("realm".to_owned(), "ldap".to_owned())].into());
        }
        t.insert_user(user);
        if i % 2 == 0 {
            members.insert(Subject::User(u.clone()));
        }
        let subject = Subject::User(u);
        t.bindings.insert(Binding {
            subject,
            role: readers.clone(),
            expires: (i % 10 == 0).then_some(Timestamp::from_unix(1_900_000_000)),
        });
    }
    t.groups.insert(
        group.clone(),
        Group {
            name: group,
            description: "all of them".into(),
            members,
        },
    );
    t
}

/// A store at revision `revision` (that many tenants created) holding a
/// checkpoint of `state` (the store checkpoints whatever it is given).
fn store_with(dir: &Path, state: &State) {
    let store = open(dir);
    for rev in 1..=state.revision {
        let m = Mutation::CreateTenant {
            tenant: TenantId::new(format!("c{rev}")).unwrap(),
            name: String::new(),
            settings: Default::default(),
        };
        store.commit(rev, &m, record(&m, rev)).unwrap();
    }
    store.checkpoint(state).unwrap();
}

fn record(m: &Mutation, revision: u64) -> AuditRecord {
    AuditRecord {
        seq: 0,
        time: Timestamp::from_unix(1_700_000_000),
        actor: None,
        credential: "operator".into(),
        revision,
        tenant: m.tenant().map(ToString::to_string),
        also: Vec::new(),
        mutation: m.clone(),
        outcome: Outcome::Applied,
    }
}

fn state(revision: u64) -> State {
    let mut s = State::new();
    s.revision = revision;
    for (id, n) in [("a", 40), ("b", 3_000), ("c", 0)] {
        let t = tenant(id, n);
        s.tenants.insert(t.id.clone(), Arc::new(t));
    }
    s
}

/// The current checkpoint as its parts: the header (JSON) and the tenants.
struct Parts {
    revision: u64,
    header: Value,
    tenants: Vec<Vec<u8>>,
}

fn read_parts(dir: &Path) -> Parts {
    let db = raw_db(dir);
    let pointer = db
        .open_tree("meta")
        .unwrap()
        .get("checkpoint")
        .unwrap()
        .unwrap();
    let revision = u64::from_be_bytes(pointer[..8].try_into().unwrap());
    let tree = db.open_tree("checkpoint").unwrap();
    let part = |p: u32| {
        let mut prefix = revision.to_be_bytes().to_vec();
        prefix.extend(p.to_be_bytes());
        let mut out = Vec::new();
        for item in tree.scan_prefix(prefix) {
            out.extend_from_slice(&item.unwrap().1);
        }
        out
    };
    let header: Value = serde_json::from_slice(&part(0)).unwrap();
    let n = header["tenants"].as_array().unwrap().len() as u32;
    let tenants = (1..=n).map(part).collect();
    Parts {
        revision,
        header,
        tenants,
    }
}

/// Writes `parts` as the current checkpoint, the header's part list (size
/// and CRC-32) made to match the parts, as the writer would.
fn write_parts(dir: &Path, parts: &Parts) {
    let mut header = parts.header.clone();
    for (info, bytes) in header["tenants"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(&parts.tenants)
    {
        info["bytes"] = (bytes.len() as u64).into();
        info["crc32"] = crc32fast::hash(bytes).into();
    }
    let header = serde_json::to_vec(&header).unwrap();
    let db = raw_db(dir);
    let tree = db.open_tree("checkpoint").unwrap();
    tree.clear().unwrap();
    for (p, bytes) in std::iter::once(&header).chain(&parts.tenants).enumerate() {
        for (c, chunk) in bytes.chunks(CHUNK).enumerate() {
            let mut key = parts.revision.to_be_bytes().to_vec();
            key.extend((p as u32).to_be_bytes());
            key.extend((c as u32).to_be_bytes());
            tree.insert(key, chunk).unwrap();
        }
    }
    let mut pointer = parts.revision.to_be_bytes().to_vec();
    pointer.extend((header.len() as u64).to_be_bytes());
    pointer.extend(crc32fast::hash(&header).to_be_bytes());
    db.open_tree("meta")
        .unwrap()
        .insert("checkpoint", pointer)
        .unwrap();
    db.flush().unwrap();
}

fn load_error(dir: &Path) -> (String, String) {
    match open(dir).load() {
        Err(StoreError::Corrupt { at, why }) => (at, why),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn checkpoints_are_written_in_format_2_with_binary_tenant_parts() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(2);
    store_with(dir.path(), &s);
    let parts = read_parts(dir.path());
    assert_eq!(parts.header["format"], 2);
    assert_eq!(parts.tenants.len(), 3);
    for bytes in &parts.tenants {
        assert!(binary::is_binary(bytes));
    }
    assert_eq!(open(dir.path()).load().unwrap(), s);
}

#[test]
fn a_format_1_checkpoint_still_loads_and_the_next_is_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(2);
    store_with(dir.path(), &s);
    // As the previous rampart wrote it: format 1, each tenant as the JSON
    // of `image::encode_tenant`.
    let mut parts = read_parts(dir.path());
    parts.header["format"] = 1.into();
    parts.tenants = s
        .tenants
        .values()
        .map(|t| image::encode_tenant(t).unwrap())
        .collect();
    write_parts(dir.path(), &parts);
    assert_eq!(read_parts(dir.path()).tenants[0][0], b'{');

    let store = open(dir.path());
    assert_eq!(store.load().unwrap(), s);
    // The next checkpoint (a newer revision) is binary.
    let m = Mutation::CreateTenant {
        tenant: TenantId::new("d").unwrap(),
        name: String::new(),
        settings: Default::default(),
    };
    store.commit(3, &m, record(&m, 3)).unwrap();
    let mut next = s.clone();
    rampart::model::apply(&mut next, &m).unwrap();
    store.checkpoint(&next).unwrap();
    drop(store);
    let parts = read_parts(dir.path());
    assert_eq!((parts.revision, &parts.header["format"]), (3, &2.into()));
    assert!(parts.tenants.iter().all(|p| binary::is_binary(p)));
    assert_eq!(open(dir.path()).load().unwrap(), next);
}

#[test]
fn a_damaged_binary_part_is_refused_naming_checkpoint_part_and_fault() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), &state(2));
    let good = read_parts(dir.path());
    let where_ = "checkpoint 2 part 2 (tenant `b`)";
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let mut cases: Vec<(&str, Damage, bool)> = vec![
        // Cut short, with a header that agrees: the image itself says so.
        ("truncated", Box::new(|b| b.truncate(b.len() / 2)), true),
        // One bit flipped, with a header that agrees: the image's own CRC.
        (
            "checksum",
            Box::new(|b| {
                let n = b.len() / 3;
                b[n] ^= 0x10;
            }),
            true,
        ),
        // One bit flipped behind the header's back: the header's CRC.
        (
            "checksum",
            Box::new(|b| {
                let n = b.len() / 3;
                b[n] ^= 0x10;
            }),
            false,
        ),
        // A layout this build does not know, framed and checksummed.
        (
            "version 7",
            Box::new(|b| {
                b[4..6].copy_from_slice(&7u16.to_le_bytes());
                let n = b.len() - 4;
                let crc = crc32fast::hash(&b[..n]);
                b[n..].copy_from_slice(&crc.to_le_bytes());
            }),
            true,
        ),
        // JSON where format 2 wants a binary image.
        (
            "not a binary tenant image",
            Box::new(|b| *b = br#"{"id":"b"}"#.to_vec()),
            true,
        ),
    ];
    for (want, damage, header_agrees) in cases.drain(..) {
        let mut parts = Parts {
            revision: good.revision,
            header: good.header.clone(),
            tenants: good.tenants.clone(),
        };
        damage(&mut parts.tenants[1]);
        if header_agrees {
            write_parts(dir.path(), &parts);
        } else {
            // The header keeps the size and checksum of the good part; the
            // damaged one (as long) is written over it.
            write_parts(dir.path(), &good);
            let db = raw_db(dir.path());
            let tree = db.open_tree("checkpoint").unwrap();
            for (c, chunk) in parts.tenants[1].chunks(CHUNK).enumerate() {
                let mut key = good.revision.to_be_bytes().to_vec();
                key.extend(2u32.to_be_bytes());
                key.extend((c as u32).to_be_bytes());
                tree.insert(key, chunk).unwrap();
            }
            db.flush().unwrap();
        }
        let (at, why) = load_error(dir.path());
        assert_eq!(at, where_, "{want}: {why}");
        assert!(why.contains(want), "{want}: {why}");
    }
    // Put back, it loads again.
    write_parts(dir.path(), &good);
    assert_eq!(open(dir.path()).load().unwrap(), state(2));
}

#[test]
fn a_checkpoint_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), &state(2));
    let mut parts = read_parts(dir.path());
    parts.header["format"] = 3.into();
    write_parts(dir.path(), &parts);
    let (at, why) = load_error(dir.path());
    assert_eq!(at, "checkpoint 2 header");
    assert!(why.contains("format 3"), "{why}");
}

/// A tenant with every kind of field an image writes: a user with each of
/// email, display name, aliases and attributes (and one with none), an
/// inactive user, nested groups, bindings with and without an expiry.
const GOLDEN_POLICY: &str = r#"
catalog:
  - { permission: "documents:view" }
tenants:
  - id: golden
    name: Golden Inc.
    roles:
      - { name: editors, description: edit, grants: ["documents:view", { deny: "documents:*" }] }
    groups:
      - { name: eng team, description: engineers, members: [alice, "group:sub"] }
      - { name: sub, members: [zoe] }
    users:
      - { id: alice, email: alice@x.org, status: inactive }
      - { id: rick, aliases: ["spiffe://c/ns/x/sa/rick", CiRmZDA2] }
      - { id: zoe, email: zoe@x.org, display_name: "Zoë «Z» Ng", aliases: [E-1], attributes: { realm: ldap, site: x-1 } }
      - { id: plain, display_name: Plain }
    bindings:
      - { subject: alice, role: editors, expires: "2027-01-01T00:00:00Z" }
      - { subject: "group:eng team", role: editors }
      - { subject: zoe, role: Administrators }
      - { subject: zoe, role: editors, expires: "2026-06-30T12:00:00Z" }
"#;

/// Its JSON image, binary image (checkpoint format 2) and changelog records
/// as the build before the compact `User` and bindings wrote them.
const GOLDEN_JSON: &str = r#"{"id":"golden","name":"Golden Inc.","settings":{"single_role_per_user":false,"shared_users":false},"roles":[{"name":"Administrators","description":"","grants":[]},{"name":"Bridges","description":"","grants":[]},{"name":"Users","description":"","grants":[]},{"name":"editors","description":"edit","grants":[{"effect":"allow","pattern":"documents:view"},{"effect":"deny","pattern":"documents:*"}]}],"groups":[{"name":"eng team","description":"engineers","members":["alice","group:sub"]},{"name":"sub","description":"","members":["zoe"]}],"users":[{"id":"alice","email":"alice@x.org","display_name":null,"status":"inactive"},{"id":"plain","email":null,"display_name":"Plain","status":"active"},{"id":"rick","email":null,"display_name":null,"status":"active","aliases":["CiRmZDA2","spiffe://c/ns/x/sa/rick"]},{"id":"zoe","email":"zoe@x.org","display_name":"Zoë «Z» Ng","status":"active","aliases":["E-1"],"attributes":{"realm":"ldap","site":"x-1"}}],"bindings":[{"subject":"alice","role":"editors","expires":"2027-01-01T00:00:00Z"},{"subject":"zoe","role":"Administrators","expires":null},{"subject":"zoe","role":"editors","expires":"2026-06-30T12:00:00Z"},{"subject":"group:eng team","role":"editors","expires":null}]}"#;
const GOLDEN_BINARY: &[&str] = &[
    "895254490100630100000000000006676f6c64656e0b476f6c64656e20496e632e337b2273696e676c655f726f6c655f",
    "7065725f75736572223a66616c73652c227368617265645f7573657273223a66616c73657d040e41646d696e69737472",
    "61746f7273000007427269646765730000055573657273000007656469746f7273046564697402000e646f63756d656e",
    "74733a76696577010b646f63756d656e74733a2a0208656e67207465616d09656e67696e656572730200000101037375",
    "62000100030405616c696365010b616c69636540782e6f72670001000005706c61696e000105506c61696e0000000472",
    "69636b00000002084369526d5a444132177370696666653a2f2f632f6e732f782f73612f7269636b00037a6f6501097a",
    "6f6540782e6f7267010d5a6fc3ab20c2ab5ac2bb204e67000103452d3102057265616c6d046c64617004736974650378",
    "2d3104000000030180b2b7b30d0003000000000300030180bf9da40d01000003000e3c9553",
];
const GOLDEN_RECORDS: &str = r#"[{"kind":"define_catalog_entry","entry":{"pattern":"documents:view","category":"","description":"","stability":"stable","builtin":false}},{"kind":"create_tenant","tenant":"golden","name":"Golden Inc.","settings":{"single_role_per_user":false,"shared_users":false}},{"kind":"create_role","tenant":"golden","role":"editors","description":"edit"},{"kind":"set_grants","tenant":"golden","role":"editors","grants":[{"effect":"allow","pattern":"documents:view"},{"effect":"deny","pattern":"documents:*"}]},{"kind":"add_user","tenant":"golden","user":"alice","email":"alice@x.org","display_name":null,"status":"inactive"},{"kind":"add_user","tenant":"golden","user":"plain","email":null,"display_name":"Plain","status":"active"},{"kind":"add_user","tenant":"golden","user":"rick","email":null,"display_name":null,"status":"active","aliases":["CiRmZDA2","spiffe://c/ns/x/sa/rick"]},{"kind":"add_user","tenant":"golden","user":"zoe","email":"zoe@x.org","display_name":"Zoë «Z» Ng","status":"active","aliases":["E-1"],"attributes":{"realm":"ldap","site":"x-1"}},{"kind":"create_group","tenant":"golden","group":"eng team","description":"engineers"},{"kind":"create_group","tenant":"golden","group":"sub","description":""},{"kind":"add_member","tenant":"golden","group":"eng team","member":"alice"},{"kind":"add_member","tenant":"golden","group":"eng team","member":"group:sub"},{"kind":"add_member","tenant":"golden","group":"sub","member":"zoe"},{"kind":"assign","tenant":"golden","subject":"alice","role":"editors","expires":"2027-01-01T00:00:00Z"},{"kind":"assign","tenant":"golden","subject":"zoe","role":"Administrators","expires":null},{"kind":"assign","tenant":"golden","subject":"zoe","role":"editors","expires":"2026-06-30T12:00:00Z"},{"kind":"assign","tenant":"golden","subject":"group:eng team","role":"editors","expires":null}]"#;

#[test]
fn images_and_records_are_written_byte_for_byte_as_before() {
    let state = rampart::model::policy_file::load_str(GOLDEN_POLICY).unwrap();
    let t = &state.tenants["golden"];
    let json = image::encode_tenant(t).unwrap();
    assert_eq!(String::from_utf8(json.clone()).unwrap(), GOLDEN_JSON);
    // The owned image (the export file's) writes the same.
    let owned = serde_json::to_value(image::Image::of(&state)).unwrap();
    assert_eq!(
        owned["tenants"][0],
        serde_json::from_str::<Value>(GOLDEN_JSON).unwrap()
    );
    let hex: String = binary::encode_tenant(t)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, GOLDEN_BINARY.concat());
    let records = rampart::model::policy_file::to_mutations(&state);
    assert_eq!(serde_json::to_string(&records).unwrap(), GOLDEN_RECORDS);
    // And each reads back as the tenant, which writes the same bytes again.
    let from_json = image::decode_tenant(&json).unwrap();
    let from_binary = binary::decode_tenant(&binary::encode_tenant(t).unwrap()).unwrap();
    for back in [&from_json, &from_binary] {
        assert_eq!(back, &**t);
        assert!(back.alias_index_is_consistent());
        assert_eq!(image::encode_tenant(back).unwrap(), json);
    }
}
