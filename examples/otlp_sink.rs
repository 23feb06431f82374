//! A minimal OTLP/gRPC trace receiver for benchmarks: it accepts every
//! export, counts the spans by the resource's `service.name`, and prints
//! the counts as one JSON object when the process gets SIGINT or SIGTERM.
//! It keeps nothing else.
//!
//! ```sh
//! cargo run --release --example otlp_sink -- 127.0.0.1:4317
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 rampart serve
//! ```
//!
//! Used to measure what exporting traces costs on Check throughput
//! (BENCHMARKS.md); not a collector.

#![allow(clippy::expect_used, reason = "a benchmark helper")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

/// Spans received, by service name.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<BTreeMap<String, u64>>>);

fn service_name(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    resource
        .into_iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map_or_else(
            || "unknown".to_owned(),
            |v| match v {
                Value::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            },
        )
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for resource in &request.get_ref().resource_spans {
            let spans: usize = resource.scope_spans.iter().map(|s| s.spans.len()).sum();
            *counts
                .entry(service_name(resource.resource.as_ref()))
                .or_default() += spans as u64;
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".into())
        .parse()
        .expect("usage: otlp_sink [HOST:PORT]");
    let sink = Sink::default();
    let report = sink.clone();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink))
        .serve_with_shutdown(addr, async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
    eprintln!("otlp_sink: listening on {addr}");
    server.await.expect("serve");
    let counts = report.0.lock().unwrap_or_else(|e| e.into_inner());
    let fields: Vec<String> = counts.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    println!("{{{}}}", fields.join(","));
}
