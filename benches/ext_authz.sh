#!/usr/bin/env bash
# Envoy's Check (ext_authz) against rampart's native Check on the same server
# (BENCHMARKS.md "Envoy external authorization").
#
# One server, the built-in quickstart policy, `--config benches/ext_authz.toml`
# (the mapping that turns the bench's Envoy requests back into the native
# checks). In each round, one native load and two ext_authz loads, one after
# the other, with the same requests, connections and concurrency:
#   check             rampart bench --mode check --connections 2 --concurrency 64
#   ext-authz         --mode ext-authz: each request with the 10 headers of a
#                     typical request (Envoy's default: every header is sent)
#   ext-authz-mapped  --mode ext-authz --envoy-headers mapped: only the 3 the
#                     mapping reads (Envoy with allowed_headers, as in
#                     deploy/envoy/envoy.yaml)
# The server's CPU time (utime+stime from /proc/PID/stat) is read around
# each run, and the load generator's with GNU time, so each side's cost per
# call is told apart on the cores they share.
#
# Usage: bash benches/ext_authz.sh [ROUNDS] [SECONDS]   (default 3 rounds of 5 s)
# Needs: target/release/rampart (`cargo build --release`), python3, GNU time
# (/usr/bin/time).
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
    for mode in check ext-authz ext-authz-mapped; do
        case $mode in
        ext-authz-mapped) flags=(--mode ext-authz --envoy-headers mapped) ;;
        *) flags=(--mode "$mode") ;;
        esac
        before=$(cpu)
        result=$(/usr/bin/time -f '%U %S' -o "$work/client.time" \
            "$bin" bench --server "http://127.0.0.1:$port" "${flags[@]}" \
            --connections 2 --concurrency 64 --duration-secs "$secs" --json)
        after=$(cpu)
        read -r user sys <"$work/client.time"
        printf '{"round":%s,"mode":"%s","server_ticks":%s,"ticks_per_sec":%s,"client_user":%s,"client_sys":%s,"result":%s}\n' \
            "$round" "$mode" "$((after - before))" "$ticks" "$user" "$sys" "$result"
    done
done | tee "$work/results.jsonl"

python3 - "$work/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
modes = ("check", "ext-authz", "ext-authz-mapped")
def med(mode, f):
    return statistics.median(f(r) for r in rows if r["mode"] == mode)
def per_call(r, secs):
    # CPU over the whole run (warm-up included) per measured call: an
    # upper bound, the same for every mode.
    return 1e6 * secs / (r["result"]["calls"] or 1)
# Each round runs the modes back to back: the ratio within a round is
# steadier than a ratio of medians when other work comes and goes.
rounds = {}
for r in rows:
    rounds.setdefault(r["round"], {})[r["mode"]] = r["result"]["calls_per_sec"]
print()
print("| API | calls/s: median (range) | vs native (median of rounds) | p50 | p99 | server CPU per call | client CPU per call | errors |")
print("|---|---|---|---|---|---|---|---|")
for mode in modes:
    cps = [r["result"]["calls_per_sec"] for r in rows if r["mode"] == mode]
    ratio = statistics.median(v[mode] / v["check"] for v in rounds.values())
    print("| %s | %.0f (%.0f–%.0f) | %.0f %% | %.2f ms | %.2f ms | %.1f µs | %.1f µs | %d |" % (
        mode, statistics.median(cps), min(cps), max(cps), 100 * ratio,
        med(mode, lambda r: r["result"]["p50_us"]) / 1000,
        med(mode, lambda r: r["result"]["p99_us"]) / 1000,
        med(mode, lambda r: per_call(r, r["server_ticks"] / r["ticks_per_sec"])),
        med(mode, lambda r: per_call(r, r["client_user"] + r["client_sys"])),
        sum(r["result"]["errors"] for r in rows if r["mode"] == mode)))
EOF
