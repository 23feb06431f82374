#!/usr/bin/env bash
# Does a flood of bad calls slow good ones? (issue #5, BENCHMARKS.md)
#
# Two servers from the same release binary, one with the failing-call budget
# off (--max-failed-calls-per-sec 0) and one with its default (100), each
# with a tokens file holding one `check` token. Against each, in rounds:
#   good      the good load alone: a valid token, Checks, 1 connection, 32 in flight
#   unauth    the good load during a flood of calls with no token (UNAUTHENTICATED)
#   malformed the good load during a flood of calls with the valid token and a
#             malformed permission (INVALID_ARGUMENT)
# A flood is one connection with 64 in flight, started a second before the
# good load and ending after it. Also measured: the server's CPU time during
# each run (from /proc/PID/stat), and the refusals each flood got.
#
# Usage: bash benches/flood.sh [ROUNDS] [SECONDS]   (default 3 rounds of 5 s)
# Needs: target/release/rampart (or RAMPART_BIN), python3 for the summary.
set -euo pipefail

# rounds, secs, bin, work, pids (killed at exit), token, $work/tokens.toml
source "$(dirname "$0")/common.sh"
printf 'acme alice bad::path\n' >"$work/malformed.txt"

start() { # name port budget
    RUST_LOG=warn "$bin" serve --data-dir "$work/$1" --listen "127.0.0.1:$2" \
        --tokens-file "$work/tokens.toml" --max-failed-calls-per-sec "$3" \
        >"$work/$1.log" 2>&1 &
}
cpu_ticks() {
    if [ ! -e "/proc/$1/stat" ]; then
        echo "flood.sh: the server $1 is gone; its log:" >&2
        cat "$work"/*.log >&2
        exit 1
    fi
    awk '{print $14 + $15}' "/proc/$1/stat"
}

start off 50161 0
off_pid=$!
start on 50162 100
on_pid=$!
pids=("$off_pid" "$on_pid")
wait_port 50161
wait_port 50162

good() { # port
    "$bin" bench --server "http://127.0.0.1:$1" --token "$token" --mode check \
        --connections 1 --concurrency 32 --duration-secs "$secs" --json
}
flood() { # port kind
    local args=(--server "http://127.0.0.1:$1" --mode check --connections 1
        --concurrency 64 --duration-secs $((secs + 2)) --warmup-secs 0 --json)
    case $2 in
    unauth) "$bin" bench "${args[@]}" ;;
    malformed) "$bin" bench "${args[@]}" --token "$token" --requests-file "$work/malformed.txt" ;;
    esac
}

hz=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
    for budget in off on; do
        if [ $budget = off ]; then port=50161 pid=$off_pid; else port=50162 pid=$on_pid; fi
        for load in good unauth malformed; do
            before=$(cpu_ticks "$pid")
            started=$(date +%s.%N)
            flood_json=null
            if [ $load = good ]; then
                good_json=$(good $port)
            else
                flood $port $load >"$work/flood.json" &
                fpid=$!
                sleep 1
                good_json=$(good $port)
                # Every flood call fails: its exit code says so.
                wait $fpid || true
                flood_json=$(cat "$work/flood.json")
            fi
            ended=$(date +%s.%N)
            after=$(cpu_ticks "$pid")
            printf '{"round":%s,"budget":"%s","load":"%s","server_cpu_s":%s,"wall_s":%s,"good":%s,"flood":%s}\n' \
                "$round" "$budget" "$load" "$(echo "($after - $before) / $hz" | bc -l)" \
                "$(echo "$ended - $started" | bc -l)" "$good_json" "$flood_json"
        done
    done
done | tee "$work/results.jsonl"

python3 - "$work/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print("| budget | load | good calls/s (median) | good p50 | good p99 | flood refusals/s | server CPU % |")
print("|---|---|---|---|---|---|---|")
for budget in ["off", "on"]:
    for load in ["good", "unauth", "malformed"]:
        rs = [r for r in rows if r["budget"] == budget and r["load"] == load]
        med = lambda f: statistics.median(f(r) for r in rs)
        refusals = "-" if load == "good" else "%.0f" % med(lambda r: r["flood"]["errors"] / r["flood"]["seconds"])
        print("| %s | %s | %.0f | %.2f ms | %.2f ms | %s | %.0f |" % (
            budget, load, med(lambda r: r["good"]["calls_per_sec"]),
            med(lambda r: r["good"]["p50_us"]) / 1000, med(lambda r: r["good"]["p99_us"]) / 1000,
            refusals, med(lambda r: 100 * r["server_cpu_s"] / r["wall_s"])))
EOF
