//! Checks that name a member by an alias: decided as for the member, with
//! `{subject}` the member's id, through evaluate, explain and the listing,
//! on a full compile and after a patch.

use std::sync::Arc;

use super::*;
use crate::model::ids::Alias;
use crate::model::{Mutation, State, Timestamp, UserId, apply, policy_file};

const RICK_IDP: &str = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const CART: &str = "spiffe://cluster.local/ns/shop/sa/cart";

fn state() -> State {
    policy_file::load_str(&format!(
        r#"
catalog:
  - {{ permission: "todo:update:?OWNER?" }}
  - {{ permission: "todo:read" }}
tenants:
  - id: todo
    roles:
      - {{ name: Users, grants: ["todo:update:{{subject}}"] }}
      - {{ name: readers, grants: ["todo:read"] }}
    groups:
      - {{ name: staff, members: [rick] }}
    users:
      - {{ id: rick@the-citadel.com, aliases: ["{RICK_IDP}"] }}
      - {{ id: rick, aliases: [E-1] }}
      - {{ id: cart, status: inactive, aliases: ["{CART}"] }}
    bindings:
      - {{ subject: "group:staff", role: readers }}
"#
    ))
    .unwrap()
}

fn check(snapshot: &Snapshot, subject: &str, permission: &str) -> Result<Verdict, CheckError> {
    let request = Request {
        tenant: "todo",
        subject,
        permission,
    };
    evaluate(snapshot, &request, Timestamp::from_unix(0))
}

fn verdict(decision: Decision, reason: Reason) -> Result<Verdict, CheckError> {
    Ok(Verdict { decision, reason })
}

#[test]
fn an_alias_is_decided_as_its_member() {
    let snapshot = compile(Arc::new(state()));
    let allow = verdict(Decision::Allow, Reason::Granted);
    let deny = |r| verdict(Decision::Deny, r);
    // `{subject}` is the member's id, whichever name the check used.
    for subject in ["rick@the-citadel.com", RICK_IDP] {
        assert_eq!(
            check(&snapshot, subject, "todo:update:rick@the-citadel.com"),
            allow
        );
        assert_eq!(
            check(&snapshot, subject, &format!("todo:update:{RICK_IDP}")),
            deny(Reason::NoMatchingGrant),
            "{subject}"
        );
    }
    // Roles through groups come along.
    assert_eq!(check(&snapshot, "E-1", "todo:read"), allow);
    // An inactive member by alias.
    assert_eq!(
        check(&snapshot, CART, "todo:read"),
        deny(Reason::SubjectInactive)
    );
    // An identity nobody has; a well-formed one that is not a user id.
    for unknown in ["ghost", "spiffe://cluster.local/ns/shop/sa/other"] {
        assert_eq!(
            check(&snapshot, unknown, "todo:read"),
            deny(Reason::UnknownSubject)
        );
    }
    // A group, spaced or non-ASCII text is still malformed.
    for bad in ["group:staff", "a b", "jos\u{e9}"] {
        assert!(
            matches!(
                check(&snapshot, bad, "todo:read"),
                Err(CheckError::InvalidSubject(_))
            ),
            "{bad}"
        );
    }
    // The reference evaluator agrees.
    for subject in ["rick@the-citadel.com", RICK_IDP, "E-1", CART, "ghost"] {
        let request = Request {
            tenant: "todo",
            subject,
            permission: "todo:update:rick@the-citadel.com",
        };
        let plain = reference::decide(&snapshot.state, &request, Timestamp::from_unix(0))
            .map(|o| o.verdict);
        assert_eq!(
            plain,
            check(&snapshot, subject, "todo:update:rick@the-citadel.com"),
            "{subject}"
        );
    }
}

#[test]
fn explain_and_the_listing_name_the_member() {
    let snapshot = compile(Arc::new(state()));
    let request = Request {
        tenant: "todo",
        subject: RICK_IDP,
        permission: "todo:update:rick@the-citadel.com",
    };
    let (v, why) = explain(&snapshot, &request, Timestamp::from_unix(0)).unwrap();
    assert_eq!(v.decision, Decision::Allow);
    let rick = UserId::new("rick@the-citadel.com").unwrap();
    assert_eq!(why.user.as_ref(), Some(&rick));
    let via: Vec<&str> = why.grants[0].via.iter().map(String::as_str).collect();
    assert_eq!(via, ["user:rick@the-citadel.com", "default"]);

    let request = Request {
        tenant: "todo",
        subject: "E-1",
        permission: "todo:read",
    };
    let (_, why) = explain(&snapshot, &request, Timestamp::from_unix(0)).unwrap();
    assert_eq!(why.user.as_ref().map(UserId::as_str), Some("rick"));
    assert_eq!(why.grants[0].via, ["user:rick", "group:staff"]);

    let request = Request {
        tenant: "todo",
        subject: "nobody",
        permission: "todo:read",
    };
    let (v, why) = explain(&snapshot, &request, Timestamp::from_unix(0)).unwrap();
    assert_eq!(v.reason, Reason::UnknownSubject);
    assert_eq!(why.user, None);

    let listing = list_subject_permissions(&snapshot, "todo", "E-1", Timestamp::from_unix(0))
        .unwrap()
        .unwrap();
    assert_eq!(listing.user.as_str(), "rick");
    assert!(listing.permissions.iter().any(|(p, _, _)| p == "todo:read"));
    assert!(
        list_subject_permissions(&snapshot, "todo", "nobody", Timestamp::from_unix(0))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_patched_snapshot_resolves_the_new_aliases() {
    let mut state = state();
    let snapshot = compile(Arc::new(state.clone()));
    let rick = UserId::new("rick@the-citadel.com").unwrap();
    let change = Mutation::UpdateUserInfo {
        user: rick,
        email: None,
        display_name: None,
        aliases: Some(vec![Alias::new("new-idp-id").unwrap()]),
        attributes: None,
    };
    let touched = apply(&mut state, &change).unwrap();
    let patched = recompile(&snapshot, Arc::new(state.clone()), &touched);
    let allow = verdict(Decision::Allow, Reason::Granted);
    assert_eq!(
        check(&patched, "new-idp-id", "todo:update:rick@the-citadel.com"),
        allow
    );
    assert_eq!(
        check(&patched, RICK_IDP, "todo:update:rick@the-citadel.com"),
        verdict(Decision::Deny, Reason::UnknownSubject)
    );
    // The old snapshot still answers as it did.
    assert_eq!(
        check(&snapshot, RICK_IDP, "todo:update:rick@the-citadel.com"),
        allow
    );
    let full = compile(Arc::new(state));
    for subject in ["new-idp-id", RICK_IDP, "E-1", CART] {
        assert_eq!(
            check(&patched, subject, "todo:read"),
            check(&full, subject, "todo:read"),
            "{subject}"
        );
    }
}
