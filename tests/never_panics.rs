//! Bad input gets an error, never a panic: the parsers and the evaluator on
//! arbitrary text.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use rampart::model::catalog::CatalogPattern;
use rampart::model::{GrantPattern, PermissionPath, Subject, Timestamp, policy_file};
use rampart::policy::{Request, Snapshot, compile, evaluate, explain, list_subjects};

static QUICKSTART: LazyLock<Snapshot> = LazyLock::new(|| {
    compile(Arc::new(
        policy_file::load_str(rampart::model::QUICKSTART_POLICY).unwrap(),
    ))
});

fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z:*?{}@+ ]{0,40}",
        prop::collection::vec("[A-Za-z0-9_?*{}]{0,6}", 0..40).prop_map(|v| v.join(":")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parsers_are_total(text in texty()) {
        let _ = PermissionPath::parse(&text);
        let _ = GrantPattern::parse(&text);
        let _ = CatalogPattern::parse(&text);
        let _ = Subject::parse(&text);
        let _ = Timestamp::parse(&text);
    }

    #[test]
    fn the_fast_splitter_accepts_exactly_the_valid_paths(text in texty()) {
        let fast = rampart::policy::catalog_index::smallvec_lite::Segments::parse(&text);
        prop_assert_eq!(fast.is_some(), PermissionPath::parse(&text).is_ok(), "{:?}", text);
        if let Some(segments) = fast {
            prop_assert_eq!(segments.as_slice().join(":"), text);
        }
    }

    #[test]
    fn valid_paths_round_trip(segments in prop::collection::vec("[A-Za-z0-9_./@+-]{1,8}", 1..32)) {
        let text = segments.join(":");
        let path = PermissionPath::parse(&text).unwrap();
        prop_assert_eq!(path.segments().collect::<Vec<_>>(), segments.iter().map(String::as_str).collect::<Vec<_>>());
        // Every valid path is also a valid exact grant that matches itself.
        let grant = GrantPattern::parse(&text).unwrap();
        prop_assert!(grant.matches(&text, "anyone"));
    }

    #[test]
    fn policy_loader_is_total(text in any::<String>()) {
        let _ = policy_file::load_str(&text);
    }

    #[test]
    fn evaluator_is_total(tenant in texty(), subject in texty(), permission in texty()) {
        let snapshot = &*QUICKSTART;
        for tenant in [tenant.as_str(), "acme"] {
            let request = Request { tenant, subject: &subject, permission: &permission };
            let _ = evaluate(snapshot, &request, Timestamp::from_unix(0));
            let _ = explain(snapshot, &request, Timestamp::from_unix(0));
            let _ = list_subjects(snapshot, tenant, &permission, Some(&subject), 10, Timestamp::from_unix(0));
        }
    }
}
