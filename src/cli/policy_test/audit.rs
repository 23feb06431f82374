//! `expect_audit` on a `do` step: what the audit record of the attempt
//! says. The record is made by `AuditRecord::attempt`, the constructor the
//! engine's writer uses, so the test sees what the server would log.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::model::audit::{AuditRecord, Outcome};

/// The fields asserted; each one given must match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpectAudit {
    /// The acting user, or `operator` for the operator credential.
    #[serde(default)]
    actor: Option<String>,
    /// `applied` or `refused`, as the audit log prints it.
    #[serde(default)]
    outcome: Option<String>,
    /// The mutation kind (`assign`, `grant`, …; `assign_role` is `assign`).
    #[serde(default)]
    kind: Option<String>,
    /// A refusal's code (`PERMISSION_DENIED`, …).
    #[serde(default)]
    code: Option<String>,
    /// The tenant the record is filed under.
    #[serde(default)]
    tenant: Option<String>,
}

/// `applied` or `refused`: the outcome's name in the audit log
/// (`ListAuditLog`, `ctl audit`).
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Applied => "applied",
        Outcome::Refused { .. } => "refused",
    }
}

impl ExpectAudit {
    /// Ok when `record` has every field given; else what differs, and
    /// what the record says.
    pub(super) fn check(&self, record: &AuditRecord) -> Result<(), String> {
        if let Some(o) = &self.outcome
            && o != "applied"
            && o != "refused"
        {
            return Err(format!("`outcome` is applied or refused, not `{o}`"));
        }
        let actor = record.actor.as_deref().unwrap_or("operator");
        let code = match &record.outcome {
            Outcome::Refused { code, .. } => code.as_str(),
            Outcome::Applied => "",
        };
        let tenant = record.tenant.as_deref().unwrap_or("");
        let have = [
            ("actor", actor),
            ("outcome", outcome_name(&record.outcome)),
            ("kind", record.mutation.kind()),
            ("code", code),
            ("tenant", tenant),
        ];
        let kind = self.kind.as_deref().map(super::mutation_kind);
        let want = [
            self.actor.as_deref(),
            self.outcome.as_deref(),
            kind,
            self.code.as_deref(),
            self.tenant.as_deref(),
        ];
        let mut wrong = String::new();
        for ((field, got), want) in have.iter().zip(want) {
            if let Some(want) = want
                && want != *got
            {
                let _ = write!(wrong, "{field} `{want}` expected, the record has `{got}`; ");
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let said: Vec<String> = have
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        Err(format!("{wrong}the record: {{ {} }}", said.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rules::{Actor, AdminError};
    use crate::model::{Mutation, State, Timestamp, UserId};

    fn record(refused: bool) -> AuditRecord {
        let m: Mutation = serde_json::from_value(serde_json::json!({
            "kind": "create_role", "tenant": "acme", "role": "x"
        }))
        .unwrap();
        let actor = Actor::User(UserId::new("bob").unwrap());
        let e = AdminError::SelfAdd;
        let verdict = if refused { Err(&e) } else { Ok(2) };
        AuditRecord::attempt(
            &State::default(),
            &actor,
            "t",
            &m,
            verdict,
            Timestamp::from_unix(0),
        )
    }

    fn expect(yaml: &str) -> ExpectAudit {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn every_field_given_must_match() {
        let applied = record(false);
        let refused = record(true);
        let want = expect("{ actor: bob, outcome: applied, kind: create_role, tenant: acme }");
        assert_eq!(want.check(&applied), Ok(()));
        let e = want.check(&refused).unwrap_err();
        assert!(
            e.starts_with("outcome `applied` expected, the record has `refused`"),
            "{e}"
        );
        assert!(e.contains("code: PERMISSION_DENIED"), "{e}");
        assert_eq!(
            expect("{ code: PERMISSION_DENIED }").check(&refused),
            Ok(())
        );
        let e = expect("{ actor: operator }").check(&applied).unwrap_err();
        assert!(
            e.contains("actor `operator` expected, the record has `bob`"),
            "{e}"
        );
        let e = expect("{ outcome: rejected }").check(&applied).unwrap_err();
        assert_eq!(e, "`outcome` is applied or refused, not `rejected`");
        assert!(serde_norway::from_str::<ExpectAudit>("{ who: bob }").is_err());
    }
}
