//! The binary tenant image (`store::image::binary`, what a checkpoint part
//! holds and a cold start decodes): a tenant or an error, never a panic.
//!
//! A checksum guards the payload, so bytes taken as they come would
//! almost never get past it. The first byte chooses: odd, the rest is
//! decoded as it is (the frame: tag, version, length, checksum); even, the
//! rest is a payload, framed here with a right checksum, so the fuzzer
//! explores the decoder behind it (a bug or a hand edit writes such bytes).
//! A tenant it accepts must have a consistent alias index, and must encode
//! and decode again to the same tenant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::store::image::binary::{VERSION, decode_tenant, encode_tenant, framed};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let bytes = if first % 2 == 1 {
        rest.to_vec()
    } else {
        framed(VERSION, rest)
    };
    let Ok(tenant) = decode_tenant(&bytes) else {
        return;
    };
    assert!(tenant.alias_index_is_consistent());
    let again = encode_tenant(&tenant)
        .unwrap_or_else(|e| panic!("an accepted tenant does not encode again: {e}"));
    let back = decode_tenant(&again)
        .unwrap_or_else(|e| panic!("an accepted tenant, encoded again, is refused: {e}"));
    assert!(back == tenant, "a tenant read back differs");
});
