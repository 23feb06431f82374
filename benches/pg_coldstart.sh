#!/usr/bin/env bash
# Cold start of a fresh node from PostgreSQL (issue #12): a throwaway
# cluster is seeded once with 1,000,000 users over 100 tenants
# (`rampart dev-seed --spec million --store URL`: one marker change and the
# whole state as a checkpoint), then `rampart serve --store URL` is timed
# from spawn to its "serving" log line, ROUNDS times. The same for sled
# (`dev-seed --data-dir`) in the same run, for comparison.
#
#   bash benches/pg_coldstart.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
bin=${RAMPART_BIN:-target/release/rampart}
work=$(mktemp -d)
pid=
source benches/pg.sh
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    stop_pg
    rm -rf "$work"
}
trap cleanup EXIT
start_pg

"$bin" dev-seed --spec million --store "$url"
"$bin" dev-seed --spec million --data-dir "$work/sled"

# Seconds from spawn to "serving", and the node's resident memory then.
start() { # store-args...
    local port=$((40000 + RANDOM % 20000)) t0 t1
    t0=$(date +%s.%N)
    "$bin" serve --listen "127.0.0.1:$port" "$@" >"$work/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1200); do
        if grep -q "serving rampart.v1.Authorization" "$work/serve.log"; then break; fi
        sleep 0.05
    done
    t1=$(date +%s.%N)
    local rss
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    [ -n "${KEEP_LOG:-}" ] && cp "$work/serve.log" "$KEEP_LOG.$1"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    python3 -c "print('%.2f\t%d' % ($t1 - $t0, $rss // 1024))"
}
printf 'round\tstore\tseconds to serving\tRSS MiB\n'
for r in $(seq "$rounds"); do
    printf '%s\tpostgres\t%s\n' "$r" "$(start --store "$url" --data-dir "$work/unused")"
    printf '%s\tsled\t%s\n' "$r" "$(start --data-dir "$work/sled")"
done
