#!/usr/bin/env bash
# What authentication, TLS and telemetry cost on Check throughput (issue #5,
# BENCHMARKS.md "The cost of security and telemetry").
#
# One server per setup, all from the same release binary and started at once
# (an idle server costs nothing), then in each round one Check load against
# every setup in turn:
#   base      plaintext, no credentials
#   token     a tokens file, the load sends a `check` token
#   tls       TLS (a certificate made here with openssl) and the token
#   metrics   --metrics-listen, scraped every second during the load
#   declog    --decision-log FILE at rate 1.0 (every decision written)
#   otlp      OTLP trace export to a local sink (examples/otlp_sink.rs), every
#             call sampled (the SDK's default parentbased_always_on)
#   otlp1pct  the same with OTEL_TRACES_SAMPLER=traceidratio, ratio 0.01
# The load: `rampart bench --mode check --connections 2 --concurrency 64`.
#
# Usage: bash benches/costs.sh [ROUNDS] [SECONDS]   (default 3 rounds of 5 s)
# Needs: target/release/rampart and target/release/examples/otlp_sink
# (`cargo build --release --bins --examples`), openssl, curl, python3.
set -euo pipefail

# rounds, secs, bin, work, pids (killed at exit), token, $work/tokens.toml
source "$(dirname "$0")/common.sh"
sink=${OTLP_SINK_BIN:-target/release/examples/otlp_sink}
# A CA and a server certificate it signs (rustls refuses a CA certificate
# as the server's own).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=bench-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 1 -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>/dev/null

"$sink" 127.0.0.1:54317 >"$work/sink.out" 2>"$work/sink.err" &
sink_pid=$!
pids+=("$sink_pid")

declare -A port=([base]=50171 [token]=50172 [tls]=50173 [metrics]=50174
    [declog]=50175 [otlp]=50176 [otlp1pct]=50177)
setups=(base token tls metrics declog otlp otlp1pct)
start() { # setup, then extra serve flags
    local name=$1
    shift
    RUST_LOG=warn "$bin" serve --data-dir "$work/$name" \
        --listen "127.0.0.1:${port[$name]}" "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
}
start base
start token --tokens-file "$work/tokens.toml"
start tls --tokens-file "$work/tokens.toml" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
start metrics --metrics-listen 127.0.0.1:59174
start declog --decision-log "$work/decisions.jsonl" --decision-log-sample 1.0
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:54317
OTEL_SERVICE_NAME=bench-otlp start otlp
OTEL_SERVICE_NAME=bench-otlp1pct OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 \
    start otlp1pct
unset OTEL_EXPORTER_OTLP_ENDPOINT
wait_port 54317
for name in "${setups[@]}"; do
    wait_port "${port[$name]}"
done

load() { # setup
    local scheme=http extra=()
    case $1 in
    token) extra=(--token "$token") ;;
    tls) scheme=https extra=(--token "$token" --ca "$work/ca.pem") ;;
    esac
    "$bin" bench --server "$scheme://127.0.0.1:${port[$1]}" --mode check \
        --connections 2 --concurrency 64 --duration-secs "$secs" --json "${extra[@]}"
}

for round in $(seq "$rounds"); do
    for name in "${setups[@]}"; do
        scraper=
        if [ "$name" = metrics ]; then
            (while true; do curl -s http://127.0.0.1:59174/metrics >/dev/null; sleep 1; done) &
            scraper=$!
        fi
        printf '{"round":%s,"setup":"%s","result":%s}\n' "$round" "$name" "$(load "$name")"
        if [ -n "$scraper" ]; then kill "$scraper"; fi
    done
done | tee "$work/results.jsonl"

# The sink prints what it received when it stops; every server first, so
# their exporters flush.
for pid in "${pids[@]:1}"; do kill "$pid" 2>/dev/null || true; done
sleep 3
kill "$sink_pid"
wait "$sink_pid" 2>/dev/null || true
echo "otlp sink received: $(cat "$work/sink.out")"

python3 - "$work/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
setups = list(dict.fromkeys(r["setup"] for r in rows))
base = statistics.median(r["result"]["calls_per_sec"] for r in rows if r["setup"] == "base")
print()
print("| setup | calls/s: median (range) | vs base | p50 | p99 | errors |")
print("|---|---|---|---|---|---|")
for s in setups:
    rs = [r["result"] for r in rows if r["setup"] == s]
    cps = [r["calls_per_sec"] for r in rs]
    med = statistics.median(cps)
    print("| %s | %.0f (%.0f–%.0f) | %+.0f %% | %.2f ms | %.2f ms | %d |" % (
        s, med, min(cps), max(cps), 100 * (med / base - 1),
        statistics.median(r["p50_us"] for r in rs) / 1000,
        statistics.median(r["p99_us"] for r in rs) / 1000,
        sum(r["errors"] for r in rs)))
EOF
