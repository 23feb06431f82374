//! The binary image of one tenant: what a checkpoint part holds since
//! checkpoint format 2 (the JSON of [`super::encode_tenant`] before).
//!
//! A part is self-describing and self-checking:
//!
//! ```text
//! TAG (0x89 'R' 'T' 'I') | version (u16 LE) | payload length (u64 LE) | payload | CRC-32 (u32 LE) of all before it
//! ```
//!
//! The payload is [postcard] of the plain mirror structs below, not of the
//! model types: postcard is positional, so a model field that is skipped
//! when empty (`#[serde(skip_serializing_if)]`) or read with a default would
//! shift every field after it, and the model's ids read themselves through
//! `String` (`#[serde(try_from)]`), which a borrowed binary read need not.
//! A new field of `User`, `Role`, `Group` or `Binding` therefore means a new
//! [`VERSION`], and the reader keeps reading the old ones. The tenant's
//! settings, a few hundred bytes that change shape most often, are kept as
//! their JSON inside the payload, so a new setting needs no new version.
//!
//! Members and bindings name users, groups and roles by their index in the
//! tenant's own (sorted) lists, falling back to the name for one the tenant
//! does not hold: smaller, no id to check and allocate again on reading,
//! and the decoded subjects share the user's id (one allocation, not one
//! per mention). Every list is written in key order and read back checked
//! to be strictly ascending, which also rules out duplicates without a
//! second map. Reading never panics: any damage is an [`ImageError`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::ImageError;
use crate::model::ids::{Alias, SYSTEM_ROLES};
use crate::model::packed;
use crate::model::{
    Binding, Bindings, Effect, Grant, GrantPattern, Group, GroupName, Role, RoleName, Subject,
    Tenant, TenantId, TenantSettings, Timestamp, User, UserId, UserStatus,
};

/// The first bytes of every binary tenant image: `0x89` is not where JSON
/// or other text starts, so a JSON part is never taken for a binary one.
pub const TAG: [u8; 4] = [0x89, b'R', b'T', b'I'];
/// The payload layout this build writes (and the newest it reads).
pub const VERSION: u16 = 1;
/// Tag, version and payload length, before the payload.
const HEAD: usize = TAG.len() + 2 + 8;
/// The head and the checksum after the payload.
const FRAME: usize = HEAD + 4;

/// Whether `bytes` start with the binary image's tag.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(&TAG)
}

/// The binary image of `tenant`.
pub fn encode_tenant(tenant: &Tenant) -> Result<Vec<u8>, ImageError> {
    let bin = TenantBin::of(tenant)?;
    let out = head(VERSION, 64 + tenant.users.len() * 24);
    let out = postcard::to_extend(&bin, out).map_err(|e| ImageError::Encode(e.to_string()))?;
    Ok(seal(out))
}

/// `payload` framed as a binary image of layout `version`: what
/// [`encode_tenant`] writes around its payload. For tests and fuzzing,
/// which need a right frame around bytes of their own.
pub fn framed(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = head(version, payload.len() + 4);
    out.extend_from_slice(payload);
    seal(out)
}

/// The payload of a framed image (its frame unchecked): what [`framed`]
/// takes. For tests and fuzzing, like it.
pub fn payload(image: &[u8]) -> Option<&[u8]> {
    image.get(HEAD..image.len().checked_sub(4)?)
}

/// The tag, `version` and a length to be filled in by [`seal`], with room
/// for `capacity` more bytes.
fn head(version: u16, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + capacity);
    out.extend_from_slice(&TAG);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// [`head`] followed by a payload, with the payload's length filled in and
/// the checksum of it all appended.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let len = out.len().saturating_sub(HEAD) as u64;
    if let Some(at) = out.get_mut(HEAD - 8..HEAD) {
        at.copy_from_slice(&len.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads what [`encode_tenant`] wrote, checking its frame first: the tag,
/// the version, the length and the checksum, each a distinct error.
pub fn decode_tenant(bytes: &[u8]) -> Result<Tenant, ImageError> {
    let truncated = |want: u64| ImageError::Truncated {
        bytes: bytes.len(),
        want,
    };
    if !is_binary(bytes) {
        return Err(if TAG.starts_with(bytes) {
            truncated(FRAME as u64)
        } else {
            ImageError::NotBinary
        });
    }
    let version = match bytes.get(TAG.len()..TAG.len() + 2) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => return Err(truncated(FRAME as u64)),
    };
    if version != VERSION {
        return Err(ImageError::Version {
            found: version,
            known: VERSION,
        });
    }
    let len = match bytes.get(HEAD - 8..HEAD).map(<[u8; 8]>::try_from) {
        Some(Ok(len)) => u64::from_le_bytes(len),
        _ => return Err(truncated(FRAME as u64)),
    };
    let want = len.saturating_add(FRAME as u64);
    match (bytes.len() as u64).cmp(&want) {
        std::cmp::Ordering::Less => return Err(truncated(want)),
        std::cmp::Ordering::Greater => {
            return Err(ImageError::Malformed(format!(
                "{} bytes after the image's {want}",
                bytes.len() as u64 - want
            )));
        }
        std::cmp::Ordering::Equal => {}
    }
    let Some((framed, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(truncated(want));
    };
    let (want_crc, found) = (u32::from_le_bytes(*crc), crc32fast::hash(framed));
    if want_crc != found {
        return Err(ImageError::Checksum {
            found,
            want: want_crc,
        });
    }
    let payload = framed.get(HEAD..).unwrap_or_default();
    let (bin, rest) = postcard::take_from_bytes::<TenantBin<'_>>(payload)
        .map_err(|e| ImageError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ImageError::Malformed(format!(
            "{} bytes after the tenant",
            rest.len()
        )));
    }
    // Ids are shared by index already; the pool shares what is left (the
    // grant patterns' segments, across patterns).
    crate::model::intern::interning(|| bin.into_tenant())
}

/// A tenant as written: its maps as lists in key order.
#[derive(Serialize, Deserialize)]
struct TenantBin<'a> {
    #[serde(borrow)]
    id: &'a str,
    name: &'a str,
    /// The JSON of `TenantSettings`.
    #[serde(borrow)]
    settings: Cow<'a, str>,
    roles: Vec<RoleBin<'a>>,
    groups: Vec<GroupBin<'a>>,
    users: Vec<UserBin<'a>>,
    bindings: Vec<BindingBin<'a>>,
}

#[derive(Serialize, Deserialize)]
struct RoleBin<'a> {
    #[serde(borrow)]
    name: &'a str,
    description: &'a str,
    grants: Vec<GrantBin<'a>>,
}

#[derive(Serialize, Deserialize)]
struct GrantBin<'a> {
    deny: bool,
    #[serde(borrow)]
    pattern: &'a str,
}

#[derive(Serialize, Deserialize)]
struct GroupBin<'a> {
    #[serde(borrow)]
    name: &'a str,
    description: &'a str,
    members: Vec<SubjectBin<'a>>,
}

#[derive(Serialize, Deserialize)]
struct UserBin<'a> {
    #[serde(borrow)]
    id: &'a str,
    email: Option<&'a str>,
    display_name: Option<&'a str>,
    inactive: bool,
    aliases: Vec<&'a str>,
    attributes: Vec<(&'a str, &'a str)>,
}

#[derive(Serialize, Deserialize)]
struct BindingBin<'a> {
    #[serde(borrow)]
    subject: SubjectBin<'a>,
    role: NameBin<'a>,
    expires: Option<i64>,
}

/// A user or group: by index in the tenant's list, or by name.
#[derive(Serialize, Deserialize)]
enum SubjectBin<'a> {
    User(u32),
    Group(u32),
    UserId(&'a str),
    GroupName(&'a str),
}

/// A role: by index in the tenant's list, or by name.
#[derive(Serialize, Deserialize)]
enum NameBin<'a> {
    Index(u32),
    Name(&'a str),
}

type Index<'a> = HashMap<&'a str, u32, foldhash::fast::RandomState>;

/// Position → index for the names of a sorted list.
fn index_of<'a>(names: impl Iterator<Item = &'a str>) -> Result<Index<'a>, ImageError> {
    names
        .enumerate()
        .map(|(i, n)| Ok((n, position(i)?)))
        .collect()
}

fn position(i: usize) -> Result<u32, ImageError> {
    u32::try_from(i).map_err(|_| ImageError::Encode("more than 2^32 entries".into()))
}

impl<'a> TenantBin<'a> {
    fn of(t: &'a Tenant) -> Result<Self, ImageError> {
        let settings =
            serde_json::to_string(&t.settings).map_err(|e| ImageError::Encode(e.to_string()))?;
        let roles_at = index_of(t.roles.keys().map(RoleName::as_str))?;
        let groups_at = index_of(t.groups.keys().map(GroupName::as_str))?;
        let users_at = index_of(t.users.keys().map(UserId::as_str))?;
        let subject = |s: &'a Subject| match s {
            Subject::User(u) => users_at
                .get(u.as_str())
                .map_or(SubjectBin::UserId(u.as_str()), |&i| SubjectBin::User(i)),
            Subject::Group(g) => groups_at
                .get(g.as_str())
                .map_or(SubjectBin::GroupName(g.as_str()), |&i| SubjectBin::Group(i)),
        };
        let roles = t
            .roles
            .values()
            .map(|r| RoleBin {
                name: r.name.as_str(),
                description: &r.description,
                grants: r
                    .grants
                    .iter()
                    .map(|g| GrantBin {
                        deny: g.effect == Effect::Deny,
                        pattern: g.pattern.as_str(),
                    })
                    .collect(),
            })
            .collect();
        let groups = t
            .groups
            .values()
            .map(|g| GroupBin {
                name: g.name.as_str(),
                description: &g.description,
                members: g.members.iter().map(subject).collect(),
            })
            .collect();
        let users = t
            .users
            .values()
            .map(|u| UserBin {
                id: u.id.as_str(),
                email: u.email(),
                display_name: u.display_name(),
                inactive: u.status == UserStatus::Inactive,
                aliases: u.aliases().iter().map(Alias::as_str).collect(),
                attributes: u
                    .attributes()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            })
            .collect();
        let bindings = t
            .bindings
            .values()
            .map(|b| BindingBin {
                subject: subject(&b.subject),
                role: roles_at
                    .get(b.role.as_str())
                    .map_or(NameBin::Name(b.role.as_str()), |&i| NameBin::Index(i)),
                expires: b.expires.map(Timestamp::unix),
            })
            .collect();
        Ok(Self {
            id: t.id.as_str(),
            name: &t.name,
            settings: Cow::Owned(settings),
            roles,
            groups,
            users,
            bindings,
        })
    }
}

/// What went wrong where, for [`ImageError::Malformed`].
fn malformed(what: impl std::fmt::Display) -> ImageError {
    ImageError::Malformed(what.to_string())
}

/// Checks that `next` follows `prev` strictly (lists are written in key
/// order, so an entry out of order or twice is damage).
fn ascending<K: Ord>(
    prev: Option<&K>,
    next: &K,
    tenant: &str,
    what: &'static str,
    name: impl FnOnce() -> String,
) -> Result<(), ImageError> {
    match prev.map(|p| p.cmp(next)) {
        Some(std::cmp::Ordering::Equal) => Err(ImageError::Duplicate {
            tenant: tenant.to_owned(),
            what,
            name: name(),
        }),
        Some(std::cmp::Ordering::Greater) => Err(malformed(format_args!(
            "tenant `{tenant}` lists {what} `{}` out of order",
            name()
        ))),
        _ => Ok(()),
    }
}

impl TenantBin<'_> {
    fn into_tenant(self) -> Result<Tenant, ImageError> {
        let id = TenantId::new(self.id).map_err(|e| malformed(format_args!("tenant id: {e}")))?;
        let tenant = id.as_str();
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            malformed(format_args!("tenant `{tenant}`: {what}: {e}"))
        };
        let settings: TenantSettings =
            serde_json::from_str(&self.settings).map_err(|e| bad("settings", &e))?;

        // Roles, each grant pattern parsed once per tenant (roles repeat them).
        let mut patterns: HashMap<&str, GrantPattern, foldhash::fast::RandomState> =
            HashMap::default();
        let mut role_names: Vec<RoleName> = Vec::with_capacity(self.roles.len());
        let mut roles = Vec::with_capacity(self.roles.len());
        for r in self.roles {
            let name = RoleName::new(r.name).map_err(|e| bad("role", &e))?;
            ascending(role_names.last(), &name, tenant, "role", || {
                name.to_string()
            })?;
            let mut grants = Vec::with_capacity(r.grants.len());
            for g in r.grants {
                let pattern = match patterns.get(g.pattern) {
                    Some(p) => p.clone(),
                    None => {
                        let p = GrantPattern::parse(g.pattern).map_err(|e| bad("grant", &e))?;
                        patterns.insert(g.pattern, p.clone());
                        p
                    }
                };
                grants.push(Grant {
                    effect: if g.deny { Effect::Deny } else { Effect::Allow },
                    pattern,
                });
            }
            role_names.push(name.clone());
            roles.push((
                name.clone(),
                Role {
                    name,
                    description: r.description.to_owned(),
                    grants,
                },
            ));
        }
        for system in SYSTEM_ROLES {
            if role_names
                .binary_search_by(|r| r.as_str().cmp(system))
                .is_err()
            {
                return Err(ImageError::MissingSystemRole {
                    tenant: tenant.to_owned(),
                    role: system,
                });
            }
        }

        let mut user_ids: Vec<UserId> = Vec::with_capacity(self.users.len());
        let mut users = Vec::with_capacity(self.users.len());
        for u in self.users {
            let id = UserId::new(u.id).map_err(|e| bad("user", &e))?;
            ascending(user_ids.last(), &id, tenant, "user", || id.to_string())?;
            let mut aliases = BTreeSet::new();
            for a in u.aliases {
                let alias = Alias::new(a).map_err(|e| bad("alias", &e))?;
                ascending(aliases.last(), &alias, tenant, "alias", || {
                    crate::model::quote(alias.as_str())
                })?;
                aliases.insert(alias);
            }
            let mut attributes = BTreeMap::new();
            for (k, v) in u.attributes {
                ascending(
                    attributes.last_key_value().map(|(k, _)| k),
                    &k.to_owned(),
                    tenant,
                    "attribute",
                    || k.to_owned(),
                )?;
                attributes.insert(k.to_owned(), v.to_owned());
            }
            user_ids.push(id.clone());
            let mut user = User::new(id.clone())
                .with_email(u.email.map(str::to_owned))
                .with_display_name(u.display_name.map(str::to_owned))
                .with_aliases(aliases)
                .with_attributes(attributes);
            if u.inactive {
                user.status = UserStatus::Inactive;
            }
            users.push((id, user));
        }

        // Group names first: members may name any group by index.
        let mut group_names: Vec<GroupName> = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let name = GroupName::new(g.name).map_err(|e| bad("group", &e))?;
            ascending(group_names.last(), &name, tenant, "group", || {
                name.to_string()
            })?;
            group_names.push(name);
        }
        let subject = |s: SubjectBin<'_>| -> Result<Subject, ImageError> {
            let out_of = |kind: &str, i: u32, n: usize| {
                malformed(format_args!(
                    "tenant `{tenant}`: {kind} #{i} of {n} is named"
                ))
            };
            Ok(match s {
                SubjectBin::User(i) => Subject::User(
                    user_ids
                        .get(i as usize)
                        .cloned()
                        .ok_or_else(|| out_of("user", i, user_ids.len()))?,
                ),
                SubjectBin::Group(i) => Subject::Group(
                    group_names
                        .get(i as usize)
                        .cloned()
                        .ok_or_else(|| out_of("group", i, group_names.len()))?,
                ),
                SubjectBin::UserId(u) => {
                    Subject::User(UserId::new(u).map_err(|e| bad("subject", &e))?)
                }
                SubjectBin::GroupName(g) => {
                    Subject::Group(GroupName::new(g).map_err(|e| bad("subject", &e))?)
                }
            })
        };
        let mut groups = Vec::with_capacity(self.groups.len());
        for (g, name) in self.groups.into_iter().zip(&group_names) {
            let mut members = Vec::with_capacity(g.members.len());
            for m in g.members {
                let member = subject(m)?;
                ascending(members.last(), &member, tenant, "member", || {
                    format!("{member} of group `{name}`")
                })?;
                members.push(member);
            }
            groups.push((
                name.clone(),
                Group {
                    name: name.clone(),
                    description: g.description.to_owned(),
                    members: packed::set(members),
                },
            ));
        }

        let mut bindings: Vec<Binding> = Vec::with_capacity(self.bindings.len());
        for b in self.bindings {
            let subject = subject(b.subject)?;
            let role = match b.role {
                NameBin::Index(i) => role_names.get(i as usize).cloned().ok_or_else(|| {
                    malformed(format_args!(
                        "tenant `{tenant}`: role #{i} of {} is named",
                        role_names.len()
                    ))
                })?,
                NameBin::Name(n) => RoleName::new(n).map_err(|e| bad("binding", &e))?,
            };
            ascending(
                bindings.last().map(|b| (&b.subject, &b.role)).as_ref(),
                &(&subject, &role),
                tenant,
                "binding",
                || format!("({subject}, {role})"),
            )?;
            bindings.push(Binding {
                subject,
                role,
                expires: b.expires.map(Timestamp::from_unix),
            });
        }

        // Every list is in ascending order (checked above): the maps are
        // built with full nodes (`model::packed`).
        let mut t = Tenant::new(id.clone(), self.name);
        t.settings = settings;
        t.roles = packed::map(roles);
        t.groups = packed::map(groups);
        t.users = packed::map(users);
        t.bindings = Bindings::from_sorted(bindings);
        // The alias index is derived, never written.
        if let Some(alias) = t.reindex_aliases() {
            return Err(ImageError::Duplicate {
                tenant: tenant.to_owned(),
                what: "alias",
                name: crate::model::quote(alias.as_str()),
            });
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::image::tests::sample;

    fn acme() -> Tenant {
        let state = sample();
        (*state.tenants["acme"]).clone()
    }

    /// Frames `payload` as a part of `version`, with a right checksum.
    #[test]
    fn every_tenant_round_trips() {
        let state = sample();
        let mut profiled = acme();
        let mut user = User::new(UserId::new("zoe").unwrap());
        user.set_display_name(Some("Zoë «Z» Ng".into()));
        user.status = UserStatus::Inactive;
        user.set_attributes(
            [("realm", "ldap"), ("site", "x-1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        );
        profiled.insert_user(user);
        profiled.settings.administrator_roles = [RoleName::new("editors").unwrap()].into();
        for t in state
            .tenants
            .values()
            .chain([&std::sync::Arc::new(profiled)])
        {
            let bytes = encode_tenant(t).unwrap();
            assert!(is_binary(&bytes));
            let back = decode_tenant(&bytes).unwrap();
            assert_eq!(&back, &**t);
            assert!(back.alias_index_is_consistent());
            // Smaller than the JSON it replaces.
            assert!(bytes.len() < crate::store::image::encode_tenant(t).unwrap().len());
        }
        let empty = Tenant::new(TenantId::new("empty").unwrap(), "");
        assert_eq!(
            decode_tenant(&encode_tenant(&empty).unwrap()).unwrap(),
            empty
        );
    }

    #[test]
    fn subjects_are_shared_with_the_users_they_name() {
        let t = decode_tenant(&encode_tenant(&acme()).unwrap()).unwrap();
        let (id, _) = t.users.iter().next().unwrap();
        let binding = t
            .bindings
            .values()
            .find_map(|b| match &b.subject {
                Subject::User(u) if u == id => Some(u),
                _ => None,
            })
            .unwrap();
        assert!(std::ptr::eq(id.as_str(), binding.as_str()));
    }

    #[test]
    fn a_subject_the_tenant_does_not_hold_is_written_by_name() {
        // Not a state `apply` makes, but an image keeps what it is given.
        let mut t = acme();
        let ghost = Subject::User(UserId::new("ghost").unwrap());
        let gone = Subject::Group(GroupName::new("gone").unwrap());
        let role = RoleName::new("no-such-role").unwrap();
        for subject in [ghost.clone(), gone.clone()] {
            t.bindings.insert(Binding {
                subject,
                role: role.clone(),
                expires: Some(Timestamp::from_unix(-5)),
            });
        }
        let group = t.groups.values().next().unwrap().name.clone();
        let mut g = t.groups[&group].clone();
        g.members.insert(ghost);
        g.members.insert(gone);
        t.groups.insert(group, g);
        assert_eq!(decode_tenant(&encode_tenant(&t).unwrap()).unwrap(), t);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode_tenant(&acme()).unwrap();
        for len in 0..bytes.len() {
            let err = decode_tenant(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, ImageError::Truncated { bytes, .. } if bytes == len),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_an_error() {
        let bytes = encode_tenant(&acme()).unwrap();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                let err = decode_tenant(&bad).unwrap_err();
                let expected = if at < TAG.len() {
                    matches!(err, ImageError::NotBinary)
                } else if at < TAG.len() + 2 {
                    matches!(err, ImageError::Version { .. })
                } else if at < HEAD {
                    // The length: the bytes are too few, or too many.
                    matches!(err, ImageError::Truncated { .. } | ImageError::Malformed(_))
                } else {
                    matches!(err, ImageError::Checksum { .. })
                };
                assert!(expected, "byte {at} bit {bit}: {err}");
            }
        }
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let bytes = encode_tenant(&acme()).unwrap();
        let newer = framed(VERSION + 1, payload(&bytes).unwrap());
        assert_eq!(
            decode_tenant(&newer).unwrap_err(),
            ImageError::Version {
                found: VERSION + 1,
                known: VERSION
            }
        );
        assert!(
            decode_tenant(&newer)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }

    #[test]
    fn json_is_not_taken_for_a_binary_image() {
        let json = crate::store::image::encode_tenant(&acme()).unwrap();
        assert_eq!(decode_tenant(&json).unwrap_err(), ImageError::NotBinary);
    }

    #[test]
    fn damage_behind_a_right_checksum_is_an_error_not_a_panic() {
        // As a bug or a hand edit would write it: the frame is right, the
        // payload is not. Every prefix, and every byte changed, of the payload.
        let bytes = encode_tenant(&acme()).unwrap();
        let good = payload(&bytes).unwrap().to_vec();
        for len in 0..good.len() {
            assert!(decode_tenant(&framed(VERSION, &good[..len])).is_err());
        }
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff, good[at] ^ 0x20] {
                let mut bad = good.clone();
                bad[at] = value;
                // Some edits still describe a valid tenant (another letter
                // in a name): those must decode to one.
                if let Ok(t) = decode_tenant(&framed(VERSION, &bad)) {
                    assert!(t.alias_index_is_consistent());
                }
            }
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            decode_tenant(&framed(VERSION, &longer)),
            Err(ImageError::Malformed(m)) if m.contains("after the tenant")
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode_tenant(&trailing),
            Err(ImageError::Malformed(m)) if m.contains("1 bytes after the image")
        ));
    }

    #[test]
    fn lists_out_of_order_or_twice_are_refused() {
        let t = acme();
        let encode = |edit: &dyn Fn(&mut TenantBin<'_>)| {
            let mut bin = TenantBin::of(&t).unwrap();
            edit(&mut bin);
            framed(VERSION, &postcard::to_allocvec(&bin).unwrap())
        };
        let twice = encode(&|b| {
            let u = b.users[0].id;
            b.users[1].id = u;
        });
        assert!(matches!(
            decode_tenant(&twice),
            Err(ImageError::Duplicate { what: "user", .. })
        ));
        let swapped = encode(&|b| b.roles.swap(0, 1));
        assert!(matches!(
            decode_tenant(&swapped),
            Err(ImageError::Malformed(m)) if m.contains("out of order")
        ));
        let dangling = encode(&|b| b.bindings[0].subject = SubjectBin::User(9_999));
        assert!(matches!(
            decode_tenant(&dangling),
            Err(ImageError::Malformed(m)) if m.contains("user #9999 of 2")
        ));
        let no_admins = encode(&|b| b.roles.retain(|r| r.name != "Administrators"));
        assert!(matches!(
            decode_tenant(&no_admins),
            Err(ImageError::MissingSystemRole { .. })
        ));
        let bad_id = encode(&|b| b.users[0].id = "not an id");
        assert!(matches!(
            decode_tenant(&bad_id),
            Err(ImageError::Malformed(m)) if m.contains("user")
        ));
        let shared_alias = encode(&|b| {
            let a = b
                .users
                .iter()
                .find(|u| !u.aliases.is_empty())
                .unwrap()
                .aliases
                .clone();
            let other = b.users.iter_mut().find(|u| u.aliases.is_empty()).unwrap();
            other.aliases = a;
        });
        assert!(matches!(
            decode_tenant(&shared_alias),
            Err(ImageError::Duplicate { what: "alias", .. })
        ));
    }
}
