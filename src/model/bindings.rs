//! A tenant's bindings: subject → role, each pair at most once, optionally
//! until a time.
//!
//! Kept as one persistent ordered set of [`Binding`]s ordered by their key
//! `(subject, role)`, so each slot holds the binding once: a map from the
//! key to the binding held the subject and the role twice (96 bytes a slot
//! against 56, about 60 bytes per user of a loaded tenant). Readers borrow
//! the bindings themselves; the key is never stored apart from them, so
//! it cannot disagree with the value. This module owns the order and the
//! lookups by key; what a binding may name is the admin rules' business.

use std::cmp::Ordering;
use std::ops::Bound;

use imbl::OrdSet;

use super::ids::{RoleName, Subject};
use super::packed;
use super::tenant::Binding;

/// Every binding of a tenant, in `(subject, role)` order.
///
/// Copying is O(1) and a change O(log n), as for the tenant's other maps.
#[derive(Clone, Default)]
pub struct Bindings {
    /// INVARIANT: no two bindings share a `(subject, role)` key (the set
    /// orders and deduplicates by the key alone).
    set: OrdSet<Keyed>,
}

/// A binding ordered and compared by its key alone, so the set finds one
/// by `(subject, role)` and an insert replaces the binding of that key.
#[derive(Clone)]
struct Keyed(Binding);

impl Keyed {
    /// A stand-in for the key `(subject, role)`, to look it up.
    fn probe(subject: &Subject, role: &RoleName) -> Self {
        Keyed(Binding {
            subject: subject.clone(),
            role: role.clone(),
            expires: None,
        })
    }
}

impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.0.subject, &self.0.role).cmp(&(&other.0.subject, &other.0.role))
    }
}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Keyed {}

impl Bindings {
    /// No bindings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bindings of `sorted`, which must be in ascending `(subject,
    /// role)` order with no key twice, built with full nodes
    /// (`model::packed`): how an image's bindings are read.
    pub fn from_sorted(sorted: Vec<Binding>) -> Self {
        Self {
            set: packed::set(sorted.into_iter().map(Keyed).collect()),
        }
    }

    /// How many bindings there are.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The binding of `subject` to `role`, if any.
    pub fn get(&self, subject: &Subject, role: &RoleName) -> Option<&Binding> {
        self.set.get(&Keyed::probe(subject, role)).map(|k| &k.0)
    }

    /// Whether `subject` is bound to `role`.
    pub fn contains(&self, subject: &Subject, role: &RoleName) -> bool {
        self.get(subject, role).is_some()
    }

    /// Adds `binding`, replacing (and returning) the binding of the same
    /// subject and role, if any.
    pub fn insert(&mut self, binding: Binding) -> Option<Binding> {
        self.set.insert(Keyed(binding)).map(|k| k.0)
    }

    /// Removes (and returns) the binding of `subject` to `role`, if any.
    pub fn remove(&mut self, subject: &Subject, role: &RoleName) -> Option<Binding> {
        self.set.remove(&Keyed::probe(subject, role)).map(|k| k.0)
    }

    /// Keeps only the bindings `keep` says so of.
    pub fn retain(&mut self, mut keep: impl FnMut(&Binding) -> bool) {
        let gone: Vec<Keyed> = self.set.iter().filter(|k| !keep(&k.0)).cloned().collect();
        for k in gone {
            self.set.remove(&k);
        }
    }

    /// Every binding, in `(subject, role)` order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Binding> + '_ {
        self.set.iter().map(|k| &k.0)
    }

    /// The bindings after the key `(subject, role)` (all of them for
    /// `None`), in order: where a page of them resumes.
    pub fn after(&self, key: Option<(&Subject, &RoleName)>) -> impl Iterator<Item = &Binding> + '_ {
        let start = key.map_or(Bound::Unbounded, |(s, r)| {
            Bound::Excluded(Keyed::probe(s, r))
        });
        self.set.range((start, Bound::Unbounded)).map(|k| &k.0)
    }

    /// The bindings of `subject`, in role-name order: a range of the set,
    /// O(log n + k).
    pub fn of<'a>(&'a self, subject: &'a Subject) -> impl Iterator<Item = &'a Binding> + 'a {
        // `!` sorts before every valid role name: a name's first character
        // is neither white space nor a control character, so it is above
        // U+0020, and `!` is U+0021.
        let start = match RoleName::new("!") {
            Ok(least) => Bound::Included(Keyed::probe(subject, &least)),
            Err(_) => Bound::Unbounded,
        };
        self.set
            .range((start, Bound::Unbounded))
            .map(|k| &k.0)
            .skip_while(move |b| b.subject != *subject)
            .take_while(move |b| b.subject == *subject)
    }
}

/// Equal when they hold the same bindings, expiry included.
impl PartialEq for Bindings {
    fn eq(&self, other: &Self) -> bool {
        self.set.ptr_eq(&other.set)
            || (self.len() == other.len() && self.values().eq(other.values()))
    }
}

impl Eq for Bindings {}

/// As the map from `(subject, role)` to the binding printed itself.
impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.values().map(|b| ((&b.subject, &b.role), b)))
            .finish()
    }
}

impl FromIterator<Binding> for Bindings {
    /// Later bindings of a key replace earlier ones, as `insert` does.
    fn from_iter<I: IntoIterator<Item = Binding>>(iter: I) -> Self {
        let mut out = Bindings::new();
        for binding in iter {
            out.insert(binding);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupName, Timestamp, UserId};

    fn user(id: &str) -> Subject {
        Subject::User(UserId::new(id).unwrap())
    }

    #[test]
    fn a_binding_stays_four_words() {
        // Every slot of the set holds one (ids are thin `ArcStr`s, an
        // expiry's `None` is `Timestamp`'s niche): 32 bytes a binding.
        assert_eq!(std::mem::size_of::<Subject>(), 16);
        assert_eq!(std::mem::size_of::<Binding>(), 32);
    }

    fn role(name: &str) -> RoleName {
        RoleName::new(name).unwrap()
    }

    fn binding(subject: &Subject, r: &str, expires: Option<i64>) -> Binding {
        Binding {
            subject: subject.clone(),
            role: role(r),
            expires: expires.map(Timestamp::from_unix),
        }
    }

    #[test]
    fn one_binding_a_key_found_by_the_key() {
        let (alice, bob) = (user("alice"), user("bob"));
        let mut b = Bindings::new();
        assert!(b.is_empty());
        assert_eq!(b.insert(binding(&alice, "editors", None)), None);
        assert_eq!(b.insert(binding(&bob, "editors", Some(5))), None);
        // The same key again replaces, expiry and all.
        assert_eq!(
            b.insert(binding(&alice, "editors", Some(9))),
            Some(binding(&alice, "editors", None))
        );
        assert_eq!(b.len(), 2);
        assert_eq!(
            b.get(&alice, &role("editors")),
            Some(&binding(&alice, "editors", Some(9)))
        );
        assert!(b.contains(&bob, &role("editors")));
        assert!(!b.contains(&bob, &role("viewers")));
        assert_eq!(
            b.remove(&bob, &role("editors")),
            Some(binding(&bob, "editors", Some(5)))
        );
        assert_eq!(b.remove(&bob, &role("editors")), None);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn equality_sees_the_expiry() {
        let alice = user("alice");
        let a: Bindings = [binding(&alice, "r", None)].into_iter().collect();
        let b: Bindings = [binding(&alice, "r", Some(1))].into_iter().collect();
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
        assert_eq!(
            b,
            [binding(&alice, "r", Some(1))]
                .into_iter()
                .collect::<Bindings>()
        );
        assert_eq!(
            format!("{a:?}"),
            format!(
                "{{({alice:?}, {:?}): {:?}}}",
                role("r"),
                binding(&alice, "r", None)
            )
        );
    }

    #[test]
    fn ranges_by_subject_and_after_a_key() {
        let (alice, bob) = (user("alice"), user("bob"));
        let group = Subject::Group(GroupName::new("g").unwrap());
        let all = vec![
            binding(&alice, "!", None),
            binding(&alice, "Users", None),
            binding(&alice, "zed", Some(3)),
            binding(&bob, "x", None),
            binding(&group, "\"quoted", None),
        ];
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| (&a.subject, &a.role).cmp(&(&b.subject, &b.role)));
        let b = Bindings::from_sorted(sorted.clone());
        assert!(b.values().eq(sorted.iter()));
        assert_eq!(b, all.iter().cloned().collect());
        for subject in [&alice, &bob, &group, &user("carol")] {
            let want: Vec<&Binding> = sorted.iter().filter(|x| x.subject == *subject).collect();
            assert_eq!(b.of(subject).collect::<Vec<_>>(), want, "{subject:?}");
        }
        assert!(b.after(None).eq(sorted.iter()));
        for (i, x) in sorted.iter().enumerate() {
            assert!(
                b.after(Some((&x.subject, &x.role)))
                    .eq(sorted[i + 1..].iter()),
                "after {x:?}"
            );
        }
        let mut kept = b.clone();
        kept.retain(|x| x.subject != alice);
        assert_eq!(kept.len(), 2);
        assert_eq!(b.len(), 5, "persistent");
    }
}
