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
    /// For each parameterless catalog entry (by its number in the catalog
    /// index this was built with), the offset into `walk_bits` of what the
    /// wildcard trie says about its path: a check of such a permission that
    /// no grant names is one probe, like an interned one, not a trie walk.
    // INVARIANT: built with the snapshot's own catalog index (a catalog
    // change rebuilds every tenant's permission side, `recompile`).
    pub(crate) literal_walk: Vec<u32>,
    /// Arena: for each distinct trie answer, `words` allow then `words` deny.
    pub(crate) walk_bits: Vec<u64>,
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

        let mut index = Self {
            words,
            perms,
            perm_bits,
            perm_covered,
            trie,
            star_bits,
            subject_grants,
            literal_walk: Vec::new(),
            walk_bits: Vec::new(),
        };
        index.walk_literals(catalog);
        // Built by pushing: give back what doubling left unused (a tenant
        // keeps its index until a grant changes).
        index.perms.shrink_to_fit();
        index.perm_bits.shrink_to_fit();
        index.perm_covered.shrink_to_fit();
        index.trie.shrink_to_fit();
        index.star_bits.shrink_to_fit();
        index.subject_grants.shrink_to_fit();
        index.walk_bits.shrink_to_fit();
        index
    }

    /// Walks the trie once for each parameterless catalog entry, keeping
    /// each distinct answer once (most entries meet no `prefix:*` grant).
    fn walk_literals(&mut self, catalog: &CatalogIndex) {
        let words = self.words;
        let mut seen: FastMap<Vec<u64>, u32> = FastMap::default();
        let mut literal_walk = Vec::with_capacity(catalog.literal_paths().len());
        let mut walk_bits = Vec::new();
        let mut bits = vec![0u64; 2 * words];
        for path in catalog.literal_paths() {
            bits.fill(0);
            let (allow, deny) = bits.split_at_mut(words);
            let mut at = 0usize;
            for segment in path.split(':') {
                let Some(node) = self.trie.get(at) else {
                    break;
                };
                if let Some(o) = node.star {
                    bits::or_into(allow, self.star_allow(o));
                    bits::or_into(deny, self.star_deny(o));
                }
                match node.children.get(segment) {
                    Some(&n) => at = n as usize,
                    None => break,
                }
            }
            let offset = match seen.get(&bits) {
                Some(&o) => o,
                None => {
                    let o = walk_bits.len() as u32;
                    walk_bits.extend_from_slice(&bits);
                    seen.insert(bits.clone(), o);
                    o
                }
            };
            literal_walk.push(offset);
        }
        self.literal_walk = literal_walk;
        self.walk_bits = walk_bits;
    }

    /// What the wildcard trie allows for catalog literal `literal`, and
    /// what it denies; `None` if the number is not one this was built with.
    #[inline]
    pub(crate) fn literal_bits(&self, literal: u32) -> Option<(&[u64], &[u64])> {
        let start = *self.literal_walk.get(literal as usize)? as usize;
        let bits = self.walk_bits.get(start..start + 2 * self.words)?;
        Some(bits.split_at(self.words))
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
