//! Traces and logs of the real binary: spans exported over OTLP to a fake
//! collector (an in-test gRPC TraceService), continuing the caller's W3C
//! `traceparent`, flushed at shutdown; logs as JSON lines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use rampart::proto::{CheckRequest, authorization_client::AuthorizationClient};
use tonic::{Request, Response, Status};

mod common;
use common::BIN;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_callers_trace_and_are_flushed_at_shutdown() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--log-format", "json"])
        // Logs of the Check's own span quieted: the span is exported all
        // the same (RUST_LOG filters logs, not traces).
        .env("RUST_LOG", "info,rampart::server::authorization=warn")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )
        .env("OTEL_SERVICE_NAME", "rampart-under-test")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut client = loop {
        match AuthorizationClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the server did not start: {e}"),
        }
    };
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let traced = |traceparent: String| {
        let mut request = Request::new(CheckRequest {
            tenant: "acme".into(),
            subject: "alice".into(),
            permission: "documents:view".into(),
            consistency: None,
            explain: false,
        });
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().unwrap());
        request
    };
    client
        .check(traced(format!("00-{trace_id}-{parent_id}-01")))
        .await
        .unwrap();
    // A caller that did not sample its trace (flags 00): under the default
    // parentbased_always_on, no span of it is built or exported.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    client
        .check(traced(format!("00-{unsampled}-b7ad6b7169203331-00")))
        .await
        .unwrap();

    // SIGTERM: the exporter is flushed before the process exits.
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");

    let exports = collector.0.lock().unwrap().clone();
    let mut service_names = Vec::new();
    let spans: Vec<_> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .inspect(|rs| {
            if let Some(r) = &rs.resource {
                for kv in &r.attributes {
                    if kv.key == "service.name" {
                        service_names.push(format!("{:?}", kv.value));
                    }
                }
            }
        })
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    let rpc = spans
        .iter()
        .find(|s| s.name == "rampart.v1.Authorization/Check")
        .unwrap_or_else(|| {
            panic!(
                "no Check span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(hex(&rpc.trace_id), trace_id, "the caller's trace continues");
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) != unsampled),
        "a span of the unsampled trace was exported"
    );
    assert_eq!(
        hex(&rpc.parent_span_id),
        parent_id,
        "under the caller's span"
    );
    // The service's own span (tenant, decision, reason) nests inside it.
    assert!(
        spans
            .iter()
            .any(|s| s.parent_span_id == rpc.span_id && hex(&s.trace_id) == trace_id),
        "a child span of the RPC"
    );
    assert!(
        service_names
            .iter()
            .any(|n| n.contains("rampart-under-test")),
        "{service_names:?}"
    );

    // Logs are JSON lines.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut parsed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
        parsed += 1;
    }
    assert!(parsed >= 3, "{text}");
    assert!(text.contains("exporting traces over OTLP"), "{text}");
}
