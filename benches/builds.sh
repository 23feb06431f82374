#!/usr/bin/env bash
# Two builds of rampart, same machine, same run: Check throughput, and where
# a difference comes from (BENCHMARKS.md "Before and after the layout
# change").
#
# In each round, interleaved:
#   own     each build's server driven by its own `rampart bench`
#   server  each build's server driven by the NEW build's client, with the
#           server's CPU per call (utime+stime from /proc/PID/stat)
#   client  one NEW server, driven by each build's client
# The load: `rampart bench --mode check --connections 2 --concurrency 64`.
#
# Usage: bash benches/builds.sh OLD_BINARY [ROUNDS] [SECONDS]
#   (NEW is target/release/rampart or $RAMPART_BIN; default 5 rounds of 8 s)
# Prints one line per run: round, comparison, build, calls/s, p50 µs,
# p99 µs, server CPU µs per call (or -).
set -euo pipefail

old=${1:?usage: bash benches/builds.sh OLD_BINARY [ROUNDS] [SECONDS]}
shift
# rounds, secs, bin, work, pids, wait_port
source "$(dirname "$0")/common.sh"
new=$bin
tck=$(getconf CLK_TCK)

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

load() { # CLIENT PORT -> "calls/s p50 p99 calls"
    "$1" bench --server "http://127.0.0.1:$2" --mode check --connections 2 \
        --concurrency 64 --duration-secs "$secs" --warmup-secs 1 --json |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(int(j["calls_per_sec"]), j["p50_us"], j["p99_us"], j["calls"], j["errors"])'
}

serve() { # BINARY PORT -> pid in $server
    RUST_LOG=warn "$1" serve --data-dir "$work/data-$2" --listen "127.0.0.1:$2" \
        >"$work/server-$2.log" 2>&1 &
    server=$!
    pids+=("$server")
    wait_port "$2"
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

serve "$new" 50093
client_server=$server
for round in $(seq "$rounds"); do
    for build in old new; do
        b=$old; [ "$build" = new ] && b=$new
        serve "$b" 50092
        read -r cps p50 p99 _ errors < <(load "$b" 50092)
        echo "$round own $build $cps $p50 $p99 - errors=$errors"
        a=$(cpu "$server")
        read -r cps p50 p99 calls errors < <(load "$new" 50092)
        z=$(cpu "$server")
        per=$(python3 -c "print(round(($z-$a)/$tck/($calls*($secs+1)/$secs)*1e6, 1))")
        echo "$round server $build $cps $p50 $p99 $per errors=$errors"
        stop "$server"
        rm -rf "$work/data-50092"
        read -r cps p50 p99 _ errors < <(load "$b" 50093)
        echo "$round client $build $cps $p50 $p99 - errors=$errors"
    done
done
stop "$client_server"
