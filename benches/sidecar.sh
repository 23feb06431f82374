#!/usr/bin/env bash
# A sidecar replica of one tenant (issue #15): a leader on 1,000,000 users
# over 100 tenants (`rampart dev-seed --spec million`), then, ROUNDS times,
# `rampart serve --follow LEADER --tenants t042` (one 10,000-user tenant)
# timed from spawn until `rampart health` says SERVING, its VmRSS and VmHWM
# read 1 s later, and the process stopped by its PID. Loopback only; every
# process this script starts is stopped by its PID on exit.
#
#   bash benches/sidecar.sh [ROUNDS] [TENANT]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
tenant=${2:-t042}
bin=${RAMPART_BIN:-target/release/rampart}
work=$(mktemp -d)
leader= sidecar=
cleanup() {
    for p in $sidecar $leader; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port() { echo $((40000 + RANDOM % 20000)); }
# Waits until `rampart health` on $1 says SERVING (bounded: 120 s).
serving() {
    for _ in $(seq 6000); do
        if "$bin" health --server "127.0.0.1:$1" -q --timeout-ms 500 2>/dev/null; then return 0; fi
        sleep 0.02
    done
    echo "127.0.0.1:$1 did not become SERVING" >&2
    return 1
}
mib() { awk -v k="$1:" '$1 == k {print int($2 / 1024)}' "/proc/$2/status"; }

"$bin" dev-seed --spec million --data-dir "$work/leader"
lp=$(port)
"$bin" serve --listen "127.0.0.1:$lp" --data-dir "$work/leader" >"$work/leader.log" 2>&1 &
leader=$!
serving "$lp"
sleep 1
echo "leader: 1,000,000 users, VmRSS $(mib VmRSS "$leader") MiB, VmHWM $(mib VmHWM "$leader") MiB" >&2

printf 'round\tseconds to SERVING\tVmRSS MiB\tVmHWM MiB\n'
for r in $(seq "$rounds"); do
    sp=$(port)
    rm -rf "$work/sidecar"
    t0=$(date +%s.%N)
    "$bin" serve --listen "127.0.0.1:$sp" --follow "http://127.0.0.1:$lp" \
        --tenants "$tenant" --data-dir "$work/sidecar" >"$work/sidecar.log" 2>&1 &
    sidecar=$!
    serving "$sp"
    t1=$(date +%s.%N)
    sleep 1
    rss=$(mib VmRSS "$sidecar") hwm=$(mib VmHWM "$sidecar")
    kill "$sidecar"; wait "$sidecar" 2>/dev/null || true; sidecar=
    python3 -c "print('%s\t%.2f\t%d\t%d' % ($r, $t1 - $t0, $rss, $hwm))"
done
