//! The YAML policy file loader (`model::policy_file::load_str`), on any
//! text. It must answer every input with a state or located errors, never a
//! panic; a state it loads must be rebuilt exactly by its bootstrap
//! mutations (what `rampart serve` writes to an empty store) and must
//! compile, the compiled evaluator agreeing with the reference on a check
//! of each member.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rampart::model::policy_file::{load_str, to_mutations};
use rampart::model::{State, Timestamp, apply};
use rampart::policy::{Request, compile, evaluate, reference};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let state = match load_str(text) {
        Ok(state) => state,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error result with no error");
            let _ = errors.to_string();
            return;
        }
    };

    let mut rebuilt = State::new();
    for m in to_mutations(&state) {
        if let Err(e) = apply(&mut rebuilt, &m) {
            panic!("a loaded policy's bootstrap mutation does not apply: {e}: {m:?}");
        }
    }
    rebuilt.revision = state.revision;
    assert!(
        rebuilt == state,
        "the bootstrap mutations rebuild another state"
    );

    let state = Arc::new(state);
    let snapshot = compile(Arc::clone(&state));
    let now = Timestamp::from_unix(1_700_000_000);
    let permissions: Vec<&str> = state
        .catalog
        .entries()
        .iter()
        .filter_map(|e| e.pattern.as_exact())
        .take(4)
        .chain(["documents:view", "ACM:ROLE:INSERT"])
        .collect();
    for tenant in state.tenants.values().take(4) {
        for user in tenant.users.keys().take(8) {
            for permission in &permissions {
                let request = Request {
                    tenant: tenant.id.as_str(),
                    subject: user.as_str(),
                    permission,
                };
                let compiled = evaluate(&snapshot, &request, now);
                let plain = reference::decide(&state, &request, now).map(|o| o.verdict);
                assert_eq!(compiled, plain, "{request:?}");
            }
        }
    }
});
