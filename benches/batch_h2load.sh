#!/usr/bin/env bash
# BatchCheck throughput over gRPC, measured with h2load (nghttp2-client):
# 1,000-item batches over the built-in quickstart policy, 2 connections x 4
# calls in flight, server and load generator on this machine over loopback.
# Prints, per build and round: decisions/s (h2load's requests/s x 1,000) and
# the server's CPU per batch (utime+stime from /proc/PID/stat around the
# timed run). Builds are interleaved in each round, so they see the same
# load from whatever else runs on the machine.
#
# Usage: bash benches/batch_h2load.sh [ROUNDS] [BATCHES] [BINARY...]
#   ROUNDS   default 3; BATCHES per timed run, default 20000 (20 M decisions)
#   BINARY   default target/release/rampart (or $RAMPART_BIN); give two to
#            compare builds
# The body is the same 1,000 items `rampart bench --mode batch` sends (the
# quickstart mix, correlation ids 0..999), encoded with the protoc that
# protoc-bin-vendored ships (or $PROTOC) and framed for gRPC. Needs h2load
# and python3. Every run is bounded (h2load -n, and `timeout`); only the
# servers this script started are stopped, by PID.
set -euo pipefail

rounds=${1:-3}
batches=${2:-20000}
shift $(( $# > 2 ? 2 : $# ))
builds=("$@")
[ ${#builds[@]} -eq 0 ] && builds=("${RAMPART_BIN:-target/release/rampart}")

command -v h2load >/dev/null || { echo "h2load not found (apt-get install nghttp2-client)" >&2; exit 1; }
protoc=${PROTOC:-$(ls ~/.cargo/registry/src/*/protoc-bin-vendored-linux-x86_64-*/bin/protoc 2>/dev/null | head -1)}
[ -x "$protoc" ] || { echo "no protoc: set PROTOC" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
root=$(cd "$(dirname "$0")/.." && pwd)

python3 - >"$work/batch.txt" <<'EOF'
items = [("alice", "documents:view"), ("alice", "documents:edit:locked"),
         ("alice", "documents:edit:readme"), ("bob", "documents:view"),
         ("carol", "documents:view"), ("nobody", "documents:view")]
for i in range(1000):
    s, p = items[i % len(items)]
    print('items { tenant: "acme" subject: "%s" permission: "%s" correlation_id: "%d" }' % (s, p, i))
EOF
"$protoc" --encode=rampart.v1.BatchCheckRequest -I "$root/proto" \
    "$root/proto/rampart/v1/authorization.proto" <"$work/batch.txt" >"$work/batch.pb"
python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(b)) + b)
' "$work/batch.pb" "$work/batch.grpc"

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 10 s" >&2
    return 1
}
load() { # PORT COUNT -> h2load's summary
    timeout 300 h2load -n "$2" -c 2 -m 4 -d "$work/batch.grpc" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$1/rampart.v1.Authorization/BatchCheck"
}

port=50081
for round in $(seq "$rounds"); do
    for b in "${builds[@]}"; do
        port=$((port + 1))
        RUST_LOG=warn "$b" serve --data-dir "$work/data-$port" --listen "127.0.0.1:$port" \
            >"$work/server-$port.log" 2>&1 &
        server=$!
        pids+=("$server")
        wait_port "$port"
        load "$port" 1000 >/dev/null # warm-up
        a=$(cpu "$server")
        out=$(load "$port" "$batches")
        z=$(cpu "$server")
        kill "$server"
        wait "$server" 2>/dev/null || true
        ok=$(echo "$out" | sed -n 's/.* \([0-9]*\) succeeded.*/\1/p')
        rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
        python3 -c "
ok, rps, cpu = int('$ok'), float('$rps'), ($z - $a) / $tck
print(f'round $round  {\"$b\"}  {rps*1000/1e6:.2f} M decisions/s  {cpu/ok*1e6:.0f} us server CPU per batch  ({ok} of $batches batches ok)')
"
    done
done
