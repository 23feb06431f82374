-- wrk script of benches/authzen_http.sh: POSTs one fixed JSON body
-- (WRK_BODY) on every request, and prints one machine-readable line at the
-- end. Latencies are in microseconds, as wrk records them.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY")

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%.1f"
         .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99), latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
