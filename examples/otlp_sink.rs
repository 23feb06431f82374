//! A minimal OTLP/gRPC trace receiver for benchmarks: it accepts every
//! export, counts the spans, and prints the count when the process gets
//! SIGINT or SIGTERM. It keeps nothing.
//!
//! ```sh
//! cargo run --release --example otlp_sink -- 127.0.0.1:4317
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 rampart serve
//! ```
//!
//! Used to measure what exporting traces costs on Check throughput
//! (BENCHMARKS.md); not a collector.

#![allow(clippy::expect_used, reason = "a benchmark helper")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<AtomicU64>,
    exports: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.exports.fetch_add(1, Ordering::Relaxed);
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
    println!(
        "{{\"spans\":{},\"exports\":{}}}",
        report.spans.load(Ordering::Relaxed),
        report.exports.load(Ordering::Relaxed)
    );
}
