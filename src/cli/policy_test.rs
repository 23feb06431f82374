//! `rampart test`: policy test files, expected decisions checked against a
//! policy file without a server.
//!
//! ```yaml
//! policy: policy.yaml               # relative to this file
//! now: "2026-06-01T00:00:00Z"       # optional: a fixed clock for expiry
//! checks:
//!   - { name: editors can view, tenant: acme, subject: alice, permission: "documents:view", expect: allow }
//!   - { name: locked, tenant: acme, subject: alice, permission: "documents:edit:locked", expect: deny, reason: DENIED_BY_GRANT }
//!   - { name: no such tenant, tenant: nope, subject: a, permission: x, expect: error, error: NOT_FOUND }
//! tenant: acme                      # the default tenant of steps
//! steps:                            # admin changes and checks, in order
//!   - { as: bob, do: assign_role, args: { subject: bob, role: Administrators }, expect: PERMISSION_DENIED }
//!   - { do: add_user, args: { user: erin } , expect: OK }          # no `as`: the operator
//!   - { check: { subject: erin, permission: "documents:view" }, expect: deny }
//! ```
//!
//! A step's `do` is a mutation kind (`create_role`, `grant`, `assign`, …;
//! `assign_role`/`unassign_role` are accepted too) with the mutation's fields
//! as `args`. It is validated by the admin rules as the `as` user and, if
//! accepted, applied, so later steps see it. `expect_audit` (any of `actor`,
//! `outcome`, `kind`, `code`, `tenant`) asserts the audit record the server
//! would write for it:
//!
//! ```yaml
//!   - { as: bob, do: assign, args: { subject: bob, role: x }, expect: PERMISSION_DENIED,
//!       expect_audit: { actor: bob, outcome: refused, kind: assign } }
//! ```
//!
//! A step's `read` is an Admin read (`get_role`, `list_roles`,
//! `list_groups`, `list_users`, `list_bindings`) made as the `as` user by
//! the read rules, as the server makes it; `rows` is the exact set of names
//! it answers (roles, groups, user ids, `subject role` for bindings, the
//! role's grants as `allow P`/`deny P` for `get_role`), `count` their
//! number (`reads.rs`):
//!
//! ```yaml
//!   - { as: bob, read: list_roles, expect: OK, rows: [editors] }
//!   - { as: bob, read: get_role, args: { role: Administrators }, expect: PERMISSION_DENIED }
//! ```

mod audit;
mod reads;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::model::audit::AuditRecord;
use crate::model::policy_file;
use crate::model::rules::{Actor, validate};
use crate::model::{Mutation, State, Timestamp, UserId};
use crate::policy::{CheckError, Decision, Reason, Request, Snapshot, compile, evaluate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    policy: PathBuf,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    checks: Vec<CheckCase>,
    /// The tenant steps use when they name none.
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    name: Option<String>,
    /// The acting user; absent or `operator` for the operator credential.
    #[serde(default, rename = "as")]
    actor: Option<String>,
    /// A mutation kind.
    #[serde(default, rename = "do")]
    action: Option<String>,
    #[serde(default)]
    args: Option<serde_norway::Value>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    check: Option<StepCheck>,
    /// An Admin read (`get_role`, `list_roles`, …), with `args`.
    #[serde(default)]
    read: Option<String>,
    /// For `do` and `read`: `OK` or a refusal code (`PERMISSION_DENIED`, …); for `check`: allow, deny or error.
    expect: String,
    /// For `read`: the exact set of rows answered, by name.
    #[serde(default)]
    rows: Option<Vec<String>>,
    /// For `read`: how many rows are answered.
    #[serde(default)]
    count: Option<usize>,
    /// For `do`: what the audit record of the attempt says.
    #[serde(default)]
    expect_audit: Option<audit::ExpectAudit>,
    #[serde(default)]
    reason: Option<String>,
    /// A piece of the refusal message that must appear; for an accepted
    /// change, of one of its warnings.
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepCheck {
    #[serde(default)]
    tenant: Option<String>,
    subject: String,
    permission: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckCase {
    #[serde(default)]
    name: Option<String>,
    tenant: String,
    subject: String,
    permission: String,
    /// `allow`, `deny` or `error`.
    expect: String,
    #[serde(default)]
    reason: Option<String>,
    /// With `expect: error`: the gRPC code name, e.g. `NOT_FOUND`.
    #[serde(default)]
    error: Option<String>,
    /// Overrides the file's `now` for this check.
    #[serde(default)]
    at: Option<String>,
}

/// The outcome of running test files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// One block per failure (and per pass when verbose), ready to print.
    pub report: String,
}

/// The gRPC code name a check error maps to.
pub fn error_code_name(e: &CheckError) -> &'static str {
    match e {
        CheckError::UnknownTenant(_) => "NOT_FOUND",
        CheckError::InvalidPermission(_) | CheckError::InvalidSubject(_) => "INVALID_ARGUMENT",
    }
}

/// Why a policy file did not load; its message starts with the path.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: policy_file::LoadErrors,
    },
}

/// Loads a policy file.
pub fn load_policy(path: &Path) -> Result<State, PolicyLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    policy_file::load_str(&text).map_err(|source| PolicyLoadError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Runs one test file; a file that cannot be read or whose policy does not
/// load counts as one failure.
pub fn run_file(path: &Path, verbose: bool, summary: &mut Summary) {
    let file = path.display().to_string();
    let parsed: Result<TestFile, String> = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            policy_file::check_nesting(&t).map_err(|e| e.to_string())?;
            serde_norway::from_str(&t).map_err(|e| e.to_string())
        });
    let test = match parsed {
        Ok(t) => t,
        Err(e) => {
            summary.failed += 1;
            let _ = writeln!(summary.report, "FAIL {file}: {e}");
            return;
        }
    };
    let policy_path = path.parent().unwrap_or(Path::new(".")).join(&test.policy);
    let state = match load_policy(&policy_path) {
        Ok(s) => s,
        Err(e) => {
            summary.failed += 1;
            let _ = writeln!(summary.report, "FAIL {file}: policy does not load: {e}");
            return;
        }
    };
    let default_now = match test.now.as_deref().map(Timestamp::parse).transpose() {
        Ok(t) => t.unwrap_or_else(Timestamp::now),
        Err(e) => {
            summary.failed += 1;
            let _ = writeln!(summary.report, "FAIL {file}: now: {e}");
            return;
        }
    };
    let snapshot = compile(Arc::new(state.clone()));
    for (i, case) in test.checks.iter().enumerate() {
        let name = case.name.clone().unwrap_or_else(|| format!("checks[{i}]"));
        match run_case(&snapshot, case, default_now) {
            Ok(got) => {
                summary.passed += 1;
                if verbose {
                    let _ = writeln!(summary.report, "ok   {file}: {name} ({got})");
                }
            }
            Err(why) => {
                summary.failed += 1;
                let _ = writeln!(
                    summary.report,
                    "FAIL {file}: {name}\n     {} -> {} in {}: {why}",
                    case.subject, case.permission, case.tenant
                );
            }
        }
    }
    let mut state = state;
    let mut snapshot = snapshot;
    for (i, step) in test.steps.iter().enumerate() {
        let name = step.name.clone().unwrap_or_else(|| format!("steps[{i}]"));
        match run_step(
            &mut state,
            &mut snapshot,
            step,
            test.tenant.as_deref(),
            default_now,
        ) {
            Ok(got) => {
                summary.passed += 1;
                if verbose {
                    let _ = writeln!(summary.report, "ok   {file}: {name} ({got})");
                }
            }
            Err(why) => {
                summary.failed += 1;
                let _ = writeln!(summary.report, "FAIL {file}: {name}\n     {why}");
            }
        }
    }
}

/// Mutation kinds that change the whole deployment and so take no tenant.
const GLOBAL_KINDS: [&str; 5] = [
    "define_catalog_entry",
    "set_catalog_stability",
    "remove_catalog_entry",
    "set_bridges_grants",
    "update_user_info",
];

/// A `do` step's mutation kind: `assign_role`/`unassign_role` are
/// `assign`/`unassign`.
fn mutation_kind(name: &str) -> &str {
    match name {
        "assign_role" => "assign",
        "unassign_role" => "unassign",
        other => other,
    }
}

/// Who makes a step: its `as` user, or the operator (no `as`, or `operator`).
fn step_actor(step: &Step) -> Result<Actor, String> {
    Ok(match step.actor.as_deref() {
        None | Some("operator") => Actor::Operator,
        Some(u) => Actor::User(UserId::new(u).map_err(|e| format!("as: {e}"))?),
    })
}

fn run_step(
    state: &mut State,
    snapshot: &mut Snapshot,
    step: &Step,
    default_tenant: Option<&str>,
    default_now: Timestamp,
) -> Result<String, String> {
    let now = match step
        .at
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(|e| e.to_string())?
    {
        Some(t) => t,
        None => default_now,
    };
    let tenant = step.tenant.as_deref().or(default_tenant);
    let kinds = [
        step.check.is_some(),
        step.action.is_some(),
        step.read.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(
            "a step has exactly one of `do` (with `args`), `read` (with `args`) or `check`".into(),
        );
    }
    if step.read.is_none() && (step.rows.is_some() || step.count.is_some()) {
        return Err("`rows` and `count` go with a `read` step".into());
    }
    if step.action.is_none() && step.expect_audit.is_some() {
        return Err(
            "`expect_audit` goes with a `do` step: checks and reads are not written to the audit log"
                .into(),
        );
    }
    if let Some(read) = &step.read {
        return reads::run(state, step, read, tenant, now);
    }
    match (&step.check, &step.action) {
        (Some(check), None) => {
            let case = CheckCase {
                name: None,
                tenant: check
                    .tenant
                    .clone()
                    .or_else(|| tenant.map(str::to_owned))
                    .ok_or("a check step needs a tenant (in the check or the file's `tenant:`)")?,
                subject: check.subject.clone(),
                permission: check.permission.clone(),
                expect: step.expect.clone(),
                reason: step.reason.clone(),
                error: None,
                at: None,
            };
            run_case(snapshot, &case, now)
                .map_err(|why| format!("check {} -> {}: {why}", case.subject, case.permission))
        }
        (None, Some(action)) => {
            let kind = mutation_kind(action);
            let mut args = match &step.args {
                None => serde_json::Map::new(),
                Some(v) => match serde_json::to_value(v).map_err(|e| format!("args: {e}"))? {
                    serde_json::Value::Object(map) => map,
                    serde_json::Value::Null => serde_json::Map::new(),
                    other => return Err(format!("args must be a mapping, not {other}")),
                },
            };
            args.insert("kind".into(), kind.into());
            if !GLOBAL_KINDS.contains(&kind)
                && !args.contains_key("tenant")
                && let Some(t) = tenant
            {
                args.insert("tenant".into(), t.into());
            }
            // A malformed value (a blank name, a bad pattern) is refused as the
            // server would refuse it; a wrong or missing field is a bad test.
            let parsed: Result<Mutation, String> =
                serde_json::from_value(serde_json::Value::Object(args)).map_err(|e| e.to_string());
            let mutation = match parsed {
                Ok(m) => m,
                Err(e)
                    if e.starts_with("unknown field")
                        || e.starts_with("missing field")
                        || e.starts_with("unknown variant") =>
                {
                    return Err(format!(
                        "`do: {action}` with these args is not a mutation: {e}"
                    ));
                }
                Err(e) => {
                    let got = format!("INVALID_ARGUMENT ({e})");
                    if step.expect_audit.is_some() {
                        return Err(format!(
                            "{action}: expect_audit: there is no audit record: the server refuses a malformed request ({e}) before any rule, and logs nothing"
                        ));
                    }
                    if step.expect != "INVALID_ARGUMENT" {
                        return Err(format!("{action}: expected {}, got {got}", step.expect));
                    }
                    if let Some(want) = &step.message
                        && !e.contains(want.as_str())
                    {
                        return Err(format!(
                            "{action}: expected a message containing `{want}`, got `{e}`"
                        ));
                    }
                    return Ok(got);
                }
            };
            let actor = step_actor(step)?;
            let outcome = validate(state, state, &actor, &mutation, now);
            let got = match &outcome {
                Ok(_) => "OK".to_owned(),
                Err(e) => format!("{} ({e})", e.refusal().code_name()),
            };
            let code = match &outcome {
                Ok(_) => "OK",
                Err(e) => e.refusal().code_name(),
            };
            if code != step.expect {
                return Err(format!("{action}: expected {}, got {got}", step.expect));
            }
            if let (Some(want), Err(e)) = (&step.message, &outcome)
                && !e.to_string().contains(want.as_str())
            {
                return Err(format!(
                    "{action}: expected a message containing `{want}`, got `{e}`"
                ));
            }
            // An accepted change's message is its warnings, as the server
            // answers them (`MutationResponse.warnings`).
            if let (Some(want), Ok(_)) = (&step.message, &outcome) {
                let warnings = crate::model::rules::warnings(state, &mutation);
                if !warnings.iter().any(|w| w.contains(want.as_str())) {
                    return Err(format!(
                        "{action}: expected a warning containing `{want}`, got {warnings:?}"
                    ));
                }
            }
            if let Some(want) = &step.expect_audit {
                let verdict = outcome.as_ref().map(|(next, _)| next.revision);
                let record = AuditRecord::attempt(state, &actor, "test", &mutation, verdict, now);
                want.check(&record)
                    .map_err(|why| format!("{action}: expect_audit: {why}"))?;
            }
            if let Ok((next, _)) = outcome {
                *state = next;
                *snapshot = compile(Arc::new(state.clone()));
            }
            Ok(got)
        }
        _ => Err(
            "a step has exactly one of `do` (with `args`), `read` (with `args`) or `check`".into(),
        ),
    }
}

fn run_case(
    snapshot: &Snapshot,
    case: &CheckCase,
    default_now: Timestamp,
) -> Result<String, String> {
    let now = match case
        .at
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(|e| e.to_string())?
    {
        Some(t) => t,
        None => default_now,
    };
    let request = Request {
        tenant: &case.tenant,
        subject: &case.subject,
        permission: &case.permission,
    };
    let got = evaluate(snapshot, &request, now);
    let expected_reason = case
        .reason
        .as_deref()
        .map(|r| Reason::parse(r).ok_or_else(|| format!("unknown reason `{r}` in the test")))
        .transpose()?;
    let actual = match &got {
        Ok(v) => format!(
            "{} ({})",
            if v.decision == Decision::Allow {
                "allow"
            } else {
                "deny"
            },
            v.reason
        ),
        Err(e) => format!("error {} ({e})", error_code_name(e)),
    };
    let ok = match (case.expect.as_str(), &got) {
        ("allow", Ok(v)) => {
            v.decision == Decision::Allow && expected_reason.is_none_or(|r| r == v.reason)
        }
        ("deny", Ok(v)) => {
            v.decision == Decision::Deny && expected_reason.is_none_or(|r| r == v.reason)
        }
        ("error", Err(e)) => case
            .error
            .as_deref()
            .is_none_or(|c| c == error_code_name(e)),
        ("allow" | "deny" | "error", _) => false,
        (other, _) => {
            return Err(format!(
                "`expect` must be allow, deny or error, not `{other}`"
            ));
        }
    };
    if ok {
        Ok(actual)
    } else {
        let mut expected = case.expect.clone();
        if let Some(r) = &case.reason {
            let _ = write!(expected, " ({r})");
        }
        if let Some(c) = &case.error {
            let _ = write!(expected, " {c}");
        }
        Err(format!("expected {expected}, got {actual}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_checks_and_counts_failures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            r#"
catalog: [{ permission: "doc:view" }, { permission: "doc:edit:?D?" }]
tenants:
  - id: acme
    roles: [{ name: editors, grants: ["doc:view", "doc:edit:*", { deny: "doc:edit:locked" }] }]
    users: [{ id: alice }]
    bindings: [{ subject: alice, role: editors, expires: "2027-01-01T00:00:00Z" }]
"#,
        )
        .unwrap();
        let tests = dir.path().join("tests.yaml");
        std::fs::write(
            &tests,
            r#"
policy: policy.yaml
now: "2026-06-01T00:00:00Z"
checks:
  - { name: view, tenant: acme, subject: alice, permission: "doc:view", expect: allow, reason: GRANTED }
  - { name: locked, tenant: acme, subject: alice, permission: "doc:edit:locked", expect: deny, reason: DENIED_BY_GRANT }
  - { name: expired, tenant: acme, subject: alice, permission: "doc:view", expect: deny, reason: NO_MATCHING_GRANT, at: "2027-01-01T00:00:00Z" }
  - { name: tenant, tenant: nope, subject: alice, permission: "doc:view", expect: error, error: NOT_FOUND }
  - { name: wrong on purpose, tenant: acme, subject: alice, permission: "doc:view", expect: deny }
"#,
        )
        .unwrap();
        let mut summary = Summary::default();
        run_file(&tests, false, &mut summary);
        assert_eq!(
            (summary.passed, summary.failed),
            (4, 1),
            "{}",
            summary.report
        );
        assert!(summary.report.contains("wrong on purpose"));
        assert!(
            summary
                .report
                .contains("expected deny, got allow (GRANTED)"),
            "{}",
            summary.report
        );
    }
}
