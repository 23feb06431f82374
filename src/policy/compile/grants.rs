//! The permission side of a compiled tenant: interned exact permissions,
//! the wildcard trie and `{subject}` patterns, with the role bitsets of the
//! grants that match each. It depends on the tenant's roles (their order
//! and grants), the bridge grants and the catalog, never on users, groups
//! or bindings, so a membership or binding change reuses it as it is.

use super::FastMap;
use super::bits;
use crate::model::permission::{Effect, GrantPattern, PatternSegment};
use crate::model::tenant::Tenant;
use crate::model::{RoleName, State};
use crate::policy::catalog_index::CatalogIndex;

#[derive(Debug, Default)]
pub(crate) struct TrieNode {
    pub(crate) children: FastMap<Box<str>, u32>,
    /// Offset into `star_bits` of this node's `prefix:*` allow and deny sets.
    pub(crate) star: Option<u32>,
}

/// A grant with a `{subject}` segment, kept as a pattern.
#[derive(Debug)]
pub(crate) struct SubjectGrant {
    pub(crate) pattern: GrantPattern,
    pub(crate) effect: Effect,
    pub(crate) role: usize,
}

/// Every grant of a tenant's roles, compiled.
#[derive(Debug, Default)]
pub(crate) struct GrantIndex {
    /// Words per role bitset.
    pub(crate) words: usize,
    /// Interned exact permissions → index into `perm_bits`/`perm_covered`.
    pub(crate) perms: FastMap<Box<str>, u32>,
    /// Arena: for each interned permission, `words` allow then `words` deny.
    pub(crate) perm_bits: Vec<u64>,
    /// For each interned permission, the covering catalog entry.
    pub(crate) perm_covered: Vec<Option<u32>>,
    pub(crate) trie: Vec<TrieNode>,
    /// Arena: for each star node, `words` allow then `words` deny.
    pub(crate) star_bits: Vec<u64>,
    pub(crate) subject_grants: Vec<SubjectGrant>,
}

impl GrantIndex {
    /// Compiles the grants of `roles` (in bit order) of `tenant`.
    pub(crate) fn build(
        state: &State,
        catalog: &CatalogIndex,
        tenant: &Tenant,
        roles: &[RoleName],
        words: usize,
    ) -> Self {
        let mut trie = vec![TrieNode::default()];
        let mut star_bits: Vec<u64> = Vec::new();
        let mut exact: Vec<(Box<str>, Effect, usize)> = Vec::new();
        let mut subject_grants = Vec::new();
        for (ri, role_name) in roles.iter().enumerate() {
            let Some(role) = tenant.roles.get(role_name) else {
                continue;
            };
            for grant in state.grants_of(role) {
                let pattern = &grant.pattern;
                if pattern.has_subject() {
                    subject_grants.push(SubjectGrant {
                        pattern: pattern.clone(),
                        effect: grant.effect,
                        role: ri,
                    });
                } else if let Some(path) = pattern.as_exact() {
                    exact.push((Box::from(path), grant.effect, ri));
                } else {
                    // `prefix:*`: mark the node the prefix leads to.
                    let mut at = 0usize;
                    for segment in pattern.segments() {
                        let PatternSegment::Literal(lit) = segment else {
                            break;
                        };
                        at = match trie[at].children.get(&**lit) {
                            Some(&n) => n as usize,
                            None => {
                                let n = trie.len();
                                trie.push(TrieNode::default());
                                trie[at].children.insert(Box::from(&**lit), n as u32);
                                n
                            }
                        };
                    }
                    let offset = match trie[at].star {
                        Some(o) => o as usize,
                        None => {
                            let o = star_bits.len();
                            star_bits.resize(o + 2 * words, 0);
                            trie[at].star = Some(o as u32);
                            o
                        }
                    };
                    let half = if grant.effect == Effect::Allow {
                        0
                    } else {
                        words
                    };
                    bits::set(&mut star_bits[offset + half..offset + half + words], ri);
                }
            }
        }

        let mut perms: FastMap<Box<str>, u32> = FastMap::default();
        let mut perm_bits: Vec<u64> = Vec::new();
        let mut perm_covered = Vec::new();
        for (path, effect, ri) in exact {
            let id = match perms.get(&path) {
                Some(&id) => id as usize,
                None => {
                    let id = perm_covered.len();
                    perm_covered.push(catalog.covering(&path).map(|i| i as u32));
                    perm_bits.resize((id + 1) * 2 * words, 0);
                    // Fold in every wildcard grant that matches this path.
                    let mut at = 0usize;
                    for segment in path.split(':') {
                        if let Some(o) = trie[at].star {
                            let o = o as usize;
                            let (allow, deny) = (o, o + words);
                            let base = id * 2 * words;
                            for w in 0..words {
                                perm_bits[base + w] |= star_bits[allow + w];
                                perm_bits[base + words + w] |= star_bits[deny + w];
                            }
                        }
                        match trie[at].children.get(segment) {
                            Some(&n) => at = n as usize,
                            None => break,
                        }
                    }
                    perms.insert(path, id as u32);
                    id
                }
            };
            let half = if effect == Effect::Allow { 0 } else { words };
            let base = id * 2 * words + half;
            bits::set(&mut perm_bits[base..base + words], ri);
        }

        Self {
            words,
            perms,
            perm_bits,
            perm_covered,
            trie,
            star_bits,
            subject_grants,
        }
    }

    pub(crate) fn perm_allow(&self, perm: u32) -> &[u64] {
        let start = perm as usize * 2 * self.words;
        self.perm_bits.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn perm_deny(&self, perm: u32) -> &[u64] {
        let start = (perm as usize * 2 + 1) * self.words;
        self.perm_bits.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn star_allow(&self, offset: u32) -> &[u64] {
        let start = offset as usize;
        self.star_bits.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn star_deny(&self, offset: u32) -> &[u64] {
        let start = offset as usize + self.words;
        self.star_bits.get(start..start + self.words).unwrap_or(&[])
    }
}
