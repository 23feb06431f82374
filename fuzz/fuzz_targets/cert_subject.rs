//! The client-certificate reader (`server::tls::peer_names`, which the
//! auth layer maps to scopes), on any bytes: names or `None`, never a
//! panic. `subject_cn` must agree with it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::server::tls::{peer_names, subject_cn};

fuzz_target!(|data: &[u8]| {
    let names = peer_names(data);
    assert_eq!(
        subject_cn(data),
        names.as_ref().and_then(|n| n.subject_cn.clone())
    );
});
