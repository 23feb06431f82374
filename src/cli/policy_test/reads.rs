//! `read` steps: an Admin read made as the step's `as` user, decided by the
//! read rules the server uses (`model::rules::Reader`), its rows taken from
//! the state the steps have built.
//!
//! ```yaml
//!   - { as: bob, read: list_roles, expect: OK, rows: [editors], count: 1 }
//!   - { as: bob, read: get_role, args: { role: Administrators }, expect: PERMISSION_DENIED }
//!   - { read: list_bindings, args: { subject: bob }, expect: OK, rows: ["bob editors"] }
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Step, step_actor};
use crate::model::rules::{Actor, AdminError, ReadOp, Reader, Row};
use crate::model::{RoleName, State, Subject, TenantId, Timestamp};

/// A read's `args`: `role` for `get_role`, an optional `subject` for
/// `list_bindings`, nothing for the others.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    subject: Option<String>,
}

/// What a read answered: its rows by name, or a refusal's code and message.
type Answer = Result<Vec<String>, (&'static str, String)>;

/// Runs a `read` step; `Ok` says what it answered, `Err` why the step failed.
pub(super) fn run(
    state: &State,
    step: &Step,
    read: &str,
    tenant: Option<&str>,
    now: Timestamp,
) -> Result<String, String> {
    let op = ReadOp::parse(read).ok_or_else(|| {
        let names: Vec<&str> = ReadOp::ALL.iter().map(|op| op.name()).collect();
        format!("`read: {read}` is not a read: one of {}", names.join(", "))
    })?;
    let args: ReadArgs = match &step.args {
        None => ReadArgs::default(),
        Some(v) => serde_norway::from_value(v.clone()).map_err(|e| format!("{read}: args: {e}"))?,
    };
    match (op, &args.role, &args.subject) {
        (ReadOp::GetRole, None, _) => return Err("get_role: args need `role`".into()),
        (ReadOp::GetRole, Some(_), Some(_)) => {
            return Err("get_role: args take only `role`".into());
        }
        (ReadOp::ListBindings, Some(_), _) => {
            return Err("list_bindings: args take only `subject`".into());
        }
        (ReadOp::GetRole | ReadOp::ListBindings, ..) | (_, None, None) => {}
        _ => return Err(format!("{read}: takes no args")),
    }
    if (step.rows.is_some() || step.count.is_some()) && step.expect != "OK" {
        return Err(format!("{read}: `rows` and `count` go with `expect: OK`"));
    }
    let tenant =
        tenant.ok_or("a read step needs a tenant (in the step or the file's `tenant:`)")?;
    let tenant = TenantId::new(tenant).map_err(|e| format!("tenant: {e}"))?;
    let actor = step_actor(step)?;
    let answer = answer(state, op, &args, &actor, &tenant, now);
    let got = match &answer {
        Ok(rows) if rows.len() == 1 => "OK (1 row)".to_owned(),
        Ok(rows) => format!("OK ({} rows)", rows.len()),
        Err((code, message)) => format!("{code} ({message})"),
    };
    let code = answer.as_ref().map_or_else(|(c, _)| *c, |_| "OK");
    if code != step.expect {
        return Err(format!("{read}: expected {}, got {got}", step.expect));
    }
    if let (Some(want), Err((_, message))) = (&step.message, &answer)
        && !message.contains(want.as_str())
    {
        return Err(format!(
            "{read}: expected a message containing `{want}`, got `{message}`"
        ));
    }
    if let Ok(rows) = &answer {
        if let Some(want) = &step.rows {
            let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
            let have: BTreeSet<&str> = rows.iter().map(String::as_str).collect();
            if want != have {
                let missing: Vec<&&str> = want.difference(&have).collect();
                let extra: Vec<&&str> = have.difference(&want).collect();
                return Err(format!(
                    "{read}: expected rows {want:?}, got {have:?} (missing {missing:?}, not expected {extra:?})"
                ));
            }
        }
        if let Some(n) = step.count
            && n != rows.len()
        {
            return Err(format!(
                "{read}: expected {n} rows, got {}: {rows:?}",
                rows.len()
            ));
        }
    }
    Ok(got)
}

/// What the server would answer: the same checks in the same order (the
/// tenant, malformed fields, the reader, then each row).
fn answer(
    state: &State,
    op: ReadOp,
    args: &ReadArgs,
    actor: &Actor,
    tenant: &TenantId,
    now: Timestamp,
) -> Answer {
    let refused = |e: AdminError| (e.refusal().code_name(), e.to_string());
    let Some(t) = state.tenant(tenant.as_str()) else {
        return Err(refused(AdminError::UnknownTenant {
            tenant: tenant.clone(),
        }));
    };
    let invalid =
        |field: &str, e: &dyn std::fmt::Display| ("INVALID_ARGUMENT", format!("`{field}`: {e}"));
    let role = match (op, &args.role) {
        (ReadOp::GetRole, Some(name)) => {
            Some(RoleName::new(name).map_err(|e| invalid("role", &e))?)
        }
        _ => None,
    };
    let only = match &args.subject {
        Some(s) => Some(Subject::parse(s).map_err(|e| invalid("subject", &e))?),
        None => None,
    };
    let reader = Reader::admit(state, state, actor, tenant, now).map_err(refused)?;
    let rows = match op {
        ReadOp::GetRole => match role {
            Some(role) => {
                let found = reader.get_role(t, &role).map_err(refused)?;
                state
                    .grants_of(found)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }
            None => Vec::new(),
        },
        ReadOp::ListRoles => (t.roles.keys())
            .filter(|r| reader.sees(op, Row::Role(r)))
            .map(ToString::to_string)
            .collect(),
        ReadOp::ListGroups => (t.groups.keys())
            .filter(|g| reader.sees(op, Row::Group(g)))
            .map(ToString::to_string)
            .collect(),
        ReadOp::ListUsers => (t.users.keys())
            .filter(|u| reader.sees(op, Row::User(u)))
            .map(ToString::to_string)
            .collect(),
        ReadOp::ListBindings => (t.bindings.values())
            .filter(|b| only.as_ref().is_none_or(|s| *s == b.subject))
            .filter(|b| reader.sees(op, Row::subject(&b.subject)))
            .map(|b| format!("{} {}", b.subject.reference(), b.role))
            .collect(),
    };
    Ok(rows)
}
