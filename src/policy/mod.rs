//! Compiling state into snapshots, and deciding checks against them.
//!
//! Pure: no tokio, tonic or sled. [`evaluate`] cannot fail on a well-formed
//! request: a deny is an answer, not an error; only malformed input and an
//! unknown tenant are errors.

pub mod bits;
pub mod catalog_index;
pub mod compile;
pub mod evaluate;
pub mod reference;

#[cfg(test)]
mod alias_tests;

pub use crate::model::decision::{Decision, Reason};
pub use compile::{Snapshot, TenantSnapshot, compile, recompile};
pub use evaluate::{
    CheckError, DecidingGrant, Explanation, Member, Request, SubjectPermissions, Verdict,
    decide_for, evaluate, evaluate_with, explain, list_subject_permissions, list_subjects, member,
};
