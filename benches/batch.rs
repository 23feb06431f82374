//! BatchCheck in process: what the server does with one 1,000-item batch,
//! without HTTP/2 — decode the request message (prost, from one buffer, as
//! tonic hands it over), `AuthorizationService::decide_batch`, encode the
//! response — so its CPU cost can be compared across builds without the
//! noise of a load generator sharing the cores.
//!
//! - `batch_rpc/quickstart_1000`: the items `rampart bench --mode batch`
//!   and `benches/batch_h2load.sh` send (the quickstart mix, correlation
//!   ids `0`..`999`) against the quickstart policy;
//! - `batch_rpc/issue_mixed_1000`: `synthetic::mixed` on the 100k-user
//!   issue tenant (benches/evaluate.rs's `batch/100k/mixed_1000`).
//!
//! `cargo bench --bench batch`. For instruction counts, set
//! `RAMPART_BATCH_ROUNDS=N`: the binary then runs N batches of each case
//! outside criterion and exits, e.g.
//! `RAMPART_BATCH_ROUNDS=200 valgrind --tool=callgrind target/release/deps/batch-HASH`;
//! `RAMPART_BATCH_CASE=quickstart_1000` (or `issue_mixed_1000`) runs only
//! that case; add `--toggle-collect=batch::one` to count the batches alone,
//! without generating the 100k-user tenant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use prost::Message;
use rampart::engine::Engine;
use rampart::model::policy_file::load_str;
use rampart::proto;
use rampart::server::authorization::{AuthorizationService, DataPlaneConfig};
use rampart::synthetic::{self, Spec};

const BATCH: usize = 1_000;

/// The quickstart mix of `rampart bench` (`cli/bench/items.rs`).
const QUICKSTART: [(&str, &str); 6] = [
    ("alice", "documents:view"),
    ("alice", "documents:edit:locked"),
    ("alice", "documents:edit:readme"),
    ("bob", "documents:view"),
    ("carol", "documents:view"),
    ("nobody", "documents:view"),
];

struct Case {
    name: &'static str,
    service: AuthorizationService,
    body: Bytes,
}

fn encode(items: impl Iterator<Item = (String, String, String)>) -> Bytes {
    let request = proto::BatchCheckRequest {
        items: items
            .enumerate()
            .map(|(i, (tenant, subject, permission))| proto::BatchCheckItem {
                tenant: tenant.into(),
                subject: subject.into(),
                permission: permission.into(),
                correlation_id: i.to_string().into(),
            })
            .collect(),
        consistency: None,
        explain: false,
    };
    Bytes::from(request.encode_to_vec())
}

fn cases() -> Vec<Case> {
    let quickstart = load_str(rampart::model::QUICKSTART_POLICY).unwrap();
    let issue = synthetic::generate(&Spec::issue_tenant());
    let tenant = Spec::tenant_id(0);
    let mixed = synthetic::mixed(&issue, &tenant, BATCH, 0xBA7C);
    let service =
        |state| AuthorizationService::new(Arc::new(Engine::new(state)), DataPlaneConfig::default());
    vec![
        Case {
            name: "quickstart_1000",
            body: encode((0..BATCH).map(|i| {
                let (s, p) = QUICKSTART[i % QUICKSTART.len()];
                ("acme".to_owned(), s.to_owned(), p.to_owned())
            })),
            service: service(quickstart),
        },
        Case {
            name: "issue_mixed_1000",
            body: encode(
                mixed
                    .into_iter()
                    .map(|p| (p.tenant, p.subject, p.permission)),
            ),
            service: service(issue),
        },
    ]
}

/// One batch as the server handles it; the encoded response's length.
/// Never inlined, so callgrind can count it alone
/// (`--toggle-collect=batch::one`).
#[inline(never)]
fn one(runtime: &tokio::runtime::Runtime, case: &Case, out: &mut BytesMut) -> usize {
    let request = proto::BatchCheckRequest::decode(case.body.clone()).unwrap();
    let response = runtime
        .block_on(case.service.decide_batch(None, None, request, None))
        .unwrap();
    out.clear();
    response.encode(out).unwrap();
    out.len()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = cases();
    let mut out = BytesMut::with_capacity(64 * 1024);
    for case in &cases {
        let len = one(&runtime, case, &mut out);
        let answer = proto::BatchCheckResponse::decode(&out[..len]).unwrap();
        assert_eq!(answer.results.len(), BATCH);
        assert!(answer.results.iter().all(|r| matches!(
            r.outcome,
            Some(proto::batch_check_result::Outcome::Response(_))
        )));
    }
    if let Some(rounds) = std::env::var("RAMPART_BATCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        let only = std::env::var("RAMPART_BATCH_CASE").ok();
        for case in &cases {
            if only.as_deref().is_some_and(|o| o != case.name) {
                continue;
            }
            for _ in 0..rounds {
                black_box(one(&runtime, case, &mut out));
            }
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("batch_rpc");
    group.throughput(Throughput::Elements(BATCH as u64));
    for case in &cases {
        group.bench_function(case.name, |b| b.iter(|| one(&runtime, case, &mut out)));
    }
    group.finish();
    c.final_summary();
}
