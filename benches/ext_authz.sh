#!/usr/bin/env bash
# Envoy's Check (ext_authz) against rampart's native Check on the same server
# (BENCHMARKS.md "Envoy external authorization").
#
# One server, the built-in quickstart policy, `--config benches/ext_authz.toml`
# (the mapping that turns the bench's Envoy requests back into the native
# checks). In each round, one native load and one ext_authz load, one after
# the other, with the same requests, connections and concurrency:
#   rampart bench --mode check|ext-authz --connections 2 --concurrency 64
# The server's CPU time (utime+stime from /proc/PID/stat) is read around
# each run, so its cost per call is told apart from the load generator's on
# the same cores.
#
# Usage: bash benches/ext_authz.sh [ROUNDS] [SECONDS]   (default 3 rounds of 5 s)
# Needs: target/release/rampart (`cargo build --release`), python3.
set -euo pipefail

# rounds, secs, bin, work, pids (killed at exit)
source "$(dirname "$0")/common.sh"
port=50191
RUST_LOG=warn "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
    --config "$(dirname "$0")/ext_authz.toml" >"$work/server.log" 2>&1 &
server=$!
pids+=("$server")
wait_port "$port"
ticks=$(getconf CLK_TCK)

cpu() { # the server's utime+stime, in ticks
    awk '{print $14 + $15}' "/proc/$server/stat"
}

for round in $(seq "$rounds"); do
    for mode in check ext-authz; do
        before=$(cpu)
        result=$("$bin" bench --server "http://127.0.0.1:$port" --mode "$mode" \
            --connections 2 --concurrency 64 --duration-secs "$secs" --json)
        after=$(cpu)
        printf '{"round":%s,"mode":"%s","server_ticks":%s,"ticks_per_sec":%s,"result":%s}\n' \
            "$round" "$mode" "$((after - before))" "$ticks" "$result"
    done
done | tee "$work/results.jsonl"

python3 - "$work/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, f):
    return statistics.median(f(r) for r in rows if r["mode"] == mode)
def cpu_us(r):
    # Server CPU over the whole run (warm-up included) per measured call: an
    # upper bound, the same for both modes.
    calls = r["result"]["calls"] or 1
    return 1e6 * r["server_ticks"] / r["ticks_per_sec"] / calls
native = med("check", lambda r: r["result"]["calls_per_sec"])
print()
print("| API | calls/s: median (range) | vs native | p50 | p99 | server CPU per call | errors |")
print("|---|---|---|---|---|---|---|")
for mode in ("check", "ext-authz"):
    cps = [r["result"]["calls_per_sec"] for r in rows if r["mode"] == mode]
    print("| %s | %.0f (%.0f–%.0f) | %.0f %% | %.2f ms | %.2f ms | %.1f µs | %d |" % (
        mode, statistics.median(cps), min(cps), max(cps),
        100 * statistics.median(cps) / native,
        med(mode, lambda r: r["result"]["p50_us"]) / 1000,
        med(mode, lambda r: r["result"]["p99_us"]) / 1000,
        med(mode, cpu_us),
        sum(r["result"]["errors"] for r in rows if r["mode"] == mode)))
EOF
