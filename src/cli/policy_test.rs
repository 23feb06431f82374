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
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::model::Timestamp;
use crate::model::policy_file;
use crate::policy::{CheckError, Decision, Reason, Request, Snapshot, compile, evaluate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    policy: PathBuf,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    checks: Vec<CheckCase>,
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

/// Loads and compiles a policy file.
pub fn load_policy(path: &Path) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let state = policy_file::load_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(compile(Arc::new(state)))
}

/// Runs one test file; a file that cannot be read or whose policy does not
/// load counts as one failure.
pub fn run_file(path: &Path, verbose: bool, summary: &mut Summary) {
    let file = path.display().to_string();
    let parsed: Result<TestFile, String> = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_norway::from_str(&t).map_err(|e| e.to_string()));
    let test = match parsed {
        Ok(t) => t,
        Err(e) => {
            summary.failed += 1;
            let _ = writeln!(summary.report, "FAIL {file}: {e}");
            return;
        }
    };
    let policy_path = path.parent().unwrap_or(Path::new(".")).join(&test.policy);
    let snapshot = match load_policy(&policy_path) {
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
}

fn run_case(
    snapshot: &Snapshot,
    case: &CheckCase,
    default_now: Timestamp,
) -> Result<String, String> {
    let now = match case.at.as_deref().map(Timestamp::parse).transpose()? {
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
