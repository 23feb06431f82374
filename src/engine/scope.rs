//! A node that holds some tenants only (`serve --follow URL --tenants
//! a,b`): the [`Scope`], what a scoped engine keeps of the changes it
//! hears, and how it moves past the revisions its leader's filtered Watch
//! left out.
//!
//! The scope is the engine's, so every reader asks one place: the
//! follower (what to ask its leader for), the Replication service (Export,
//! GetState), the data plane (the NOT_FOUND a tenant outside it gets) and
//! the metrics. A scoped engine keeps no store: a changelog holds every
//! revision with none missing (the store contract), and a scoped node by
//! design never hears most of them. It holds its state in memory and
//! bootstraps again from its leader at each start, which costs the leader
//! an export of those tenants only.
//!
//! It must not touch the check path's happy path: [`Scope::holds`] is
//! asked only once a tenant was not found.

use std::sync::Arc;

use super::{Engine, SubmitError};
use crate::model::{Mutation, State, TenantId, Touched};
use crate::policy::recompile;

/// Most tenant names a "not served" message lists.
const NAMES_SHOWN: usize = 8;

/// The tenants a node holds: sorted, without duplicates, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    tenants: Arc<[TenantId]>,
}

impl Scope {
    /// The scope of `tenants` (any order, duplicates allowed); `None` for
    /// none, which means every tenant.
    pub fn new(tenants: impl IntoIterator<Item = TenantId>) -> Option<Self> {
        let mut tenants: Vec<TenantId> = tenants.into_iter().collect();
        tenants.sort();
        tenants.dedup();
        (!tenants.is_empty()).then(|| Self {
            tenants: tenants.into(),
        })
    }

    /// The tenants, sorted.
    pub fn tenants(&self) -> &[TenantId] {
        &self.tenants
    }

    /// The tenants as text, sorted (for requests and answers).
    pub fn names(&self) -> Vec<String> {
        self.tenants.iter().map(ToString::to_string).collect()
    }

    /// Whether `tenant` is one of them.
    pub fn holds(&self, tenant: &str) -> bool {
        self.tenants
            .binary_search_by(|t| t.as_str().cmp(tenant))
            .is_ok()
    }

    /// Whether every tenant of `other` is one of these.
    pub fn covers(&self, other: &Scope) -> bool {
        other.tenants.iter().all(|t| self.holds(t.as_str()))
    }

    /// The tenants of `other` that are not among these.
    pub fn missing(&self, other: &Scope) -> Vec<String> {
        other
            .tenants
            .iter()
            .filter(|t| !self.holds(t.as_str()))
            .map(ToString::to_string)
            .collect()
    }

    /// The tenants, comma-separated, at most [`NAMES_SHOWN`] of them.
    pub fn listed(&self) -> String {
        let mut out = self
            .tenants
            .iter()
            .take(NAMES_SHOWN)
            .map(TenantId::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if self.tenants.len() > NAMES_SHOWN {
            out.push_str(&format!(" and {} more", self.tenants.len() - NAMES_SHOWN));
        }
        out
    }

    /// Why a request about `tenant` (one this scope does not hold) is not
    /// answered here: the NOT_FOUND message of the data plane.
    pub fn not_served(&self, tenant: &str) -> String {
        format!(
            "tenant `{}` is not served by this node: it holds only the tenants named by --tenants ({})",
            crate::model::quote(tenant),
            self.listed()
        )
    }

    /// Drops from `state` every tenant this scope does not hold.
    pub fn restrict(&self, state: &mut State) {
        state.tenants.retain(|id, _| self.holds(id.as_str()));
    }

    /// Whether a scoped state (one [`Scope::restrict`] left) takes
    /// `mutation`: a change about one of these tenants, or about none (the
    /// catalog, the bridge grants), which reaches every tenant. A profile
    /// change (`update_user_info`) names no tenant and reaches the user in
    /// every tenant it is in: here, only if it is in one of these.
    pub fn keeps(&self, state: &State, mutation: &Mutation) -> bool {
        match mutation {
            Mutation::UpdateUserInfo { user, .. } => {
                state.tenants.values().any(|t| t.users.contains_key(user))
            }
            other => other.tenant().is_none_or(|t| self.holds(t.as_str())),
        }
    }
}

impl Engine {
    /// An engine that will hold only the tenants of `scope`, empty (revision
    /// 0) until a follower installs its leader's export. It has no store
    /// (see the module's documentation).
    pub fn scoped(scope: Scope) -> Self {
        let mut engine = Self::build(State::new(), None);
        engine.scope = Some(scope);
        engine
    }

    /// The tenants this engine holds; `None`: every tenant.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// On a scoped engine: moves to `revision` (the leader said every
    /// change up to it was sent or left out by the filter), publishing the
    /// same tenants at that revision so `at_least_revision` waiters see it.
    /// Does nothing on an engine that holds every tenant (its revisions
    /// come from the changes alone) or for a revision it has reached.
    pub async fn skip_to(&self, revision: u64) -> Result<u64, SubmitError> {
        if self.scope.is_none() {
            return Ok(self.load().revision());
        }
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        if revision <= snapshot.revision() {
            return Ok(snapshot.revision());
        }
        let mut state = (**snapshot.state()).clone();
        state.revision = revision;
        self.publish(recompile(&snapshot, Arc::new(state), &Touched::default()));
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[test]
    fn a_scope_is_sorted_and_deduplicated_and_never_empty() {
        let scope = Scope::new([t("globex"), t("acme"), t("globex")]).unwrap();
        assert_eq!(scope.names(), ["acme", "globex"]);
        assert!(scope.holds("acme") && scope.holds("globex"));
        assert!(!scope.holds("initech") && !scope.holds(""));
        assert_eq!(Scope::new([]), None);
        let one = Scope::new([t("acme")]).unwrap();
        assert!(scope.covers(&one));
        assert!(!one.covers(&scope));
        assert_eq!(one.missing(&scope), ["globex"]);
    }

    #[test]
    fn the_not_served_message_names_the_tenant_the_flag_and_a_few_held() {
        let scope = Scope::new([t("acme"), t("globex")]).unwrap();
        assert_eq!(
            scope.not_served("initech"),
            "tenant `initech` is not served by this node: it holds only the tenants named by --tenants (acme, globex)"
        );
        let many = Scope::new((0..20).map(|i| t(&format!("t{i:02}")))).unwrap();
        let message = many.not_served("x\u{1b}[2J");
        assert!(message.contains("`x\\u{1b}[2J`"), "{message}");
        assert!(message.ends_with("t07 and 12 more)"), "{message}");
    }

    #[tokio::test]
    async fn a_scoped_engine_takes_its_changes_across_the_revisions_left_out() {
        use crate::store::{Change, StoreError};
        let mut state =
            crate::model::policy_file::load_str(crate::model::QUICKSTART_POLICY).unwrap();
        state.revision = 5;
        let engine = Engine::scoped(Scope::new([t("acme"), t("later")]).unwrap());
        assert_eq!(engine.load().revision(), 0);
        engine.install(state, "h1").await.unwrap();
        let names = |e: &Engine| {
            e.load()
                .state()
                .tenants
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&engine), ["acme"]);
        assert_eq!(engine.history().await.unwrap().id, "h1");
        let add = |tenant: &str, user: &str| Mutation::AddUser {
            tenant: t(tenant),
            user: crate::model::UserId::new(user).unwrap(),
            email: None,
            display_name: None,
            status: crate::model::UserStatus::Active,
            aliases: Vec::new(),
            attributes: Default::default(),
        };
        let change = |revision: u64, mutation: Mutation| Change {
            revision,
            time: None,
            mutation,
        };
        let created = Mutation::CreateTenant {
            tenant: t("later"),
            name: "Later".into(),
            settings: Default::default(),
        };
        // 6–8, 10–11 went to other tenants; 12 is another tenant's, sent
        // by a leader that does not filter: left out all the same.
        let at = engine
            .replicate(vec![
                change(9, add("acme", "zed")),
                change(12, add("globex", "zed")),
                change(13, created),
                change(14, add("globex", "yan")),
            ])
            .await
            .unwrap();
        assert_eq!(at, 14);
        assert_eq!(engine.load().revision(), 14);
        assert_eq!(names(&engine), ["acme", "later"]);
        let snapshot = engine.load();
        assert!(
            snapshot.state().tenants[&t("acme")]
                .users
                .contains_key("zed")
        );
        let refused = engine
            .replicate(vec![change(14, add("acme", "xu"))])
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                SubmitError::Store(StoreError::OutOfOrder { have: 14, got: 14 })
            ),
            "{refused:?}"
        );
        // A checkpoint moves it; an older one does nothing.
        assert_eq!(engine.skip_to(20).await.unwrap(), 20);
        assert_eq!(engine.skip_to(15).await.unwrap(), 20);
        assert_eq!(engine.load().revision(), 20);
        // A batch whose every change is left out moves it too.
        let at = engine
            .replicate(vec![change(23, add("globex", "wu"))])
            .await
            .unwrap();
        assert_eq!((at, engine.load().revision()), (23, 23));
        assert_eq!(names(&engine), ["acme", "later"]);
        // An engine of every tenant takes no checkpoint as a revision.
        let full = Engine::new(State::new());
        assert_eq!(full.skip_to(9).await.unwrap(), 0);
    }

    #[test]
    fn a_scoped_state_keeps_its_tenants_changes_and_those_of_none() {
        let mut state =
            crate::model::policy_file::load_str(crate::model::QUICKSTART_POLICY).unwrap();
        let held = state.tenants.keys().next().unwrap().clone();
        let user = state.tenants[&held].users.keys().next().unwrap().clone();
        let scope = Scope::new([held.clone(), t("later")]).unwrap();
        scope.restrict(&mut state);
        assert_eq!(state.tenants.keys().collect::<Vec<_>>(), [&held]);
        let create = |tenant: &str| Mutation::CreateTenant {
            tenant: t(tenant),
            name: String::new(),
            settings: Default::default(),
        };
        assert!(scope.keeps(&state, &create("later")));
        assert!(!scope.keeps(&state, &create("other")));
        assert!(scope.keeps(&state, &Mutation::SetBridgesGrants { grants: vec![] }));
        let info = |user: crate::model::UserId| Mutation::UpdateUserInfo {
            user,
            email: Some("x@example.com".into()),
            display_name: None,
            aliases: None,
            attributes: None,
        };
        assert!(scope.keeps(&state, &info(user)));
        let stranger = crate::model::UserId::new("someone-of-another-tenant").unwrap();
        assert!(!scope.keeps(&state, &info(stranger)));
    }
}
