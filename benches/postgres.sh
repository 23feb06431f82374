#!/usr/bin/env bash
# Two rampart nodes on one throwaway PostgreSQL cluster (issue #12): writes
# through node A, each confirmed by a Check with at_least_revision on node A
# itself, then on node B (which follows the shared store every
# --poll-store-ms). Also one node on sled, the same load, for comparison.
# Everything listens on loopback and is stopped at exit.
#
#   [POLL_MS=50] bash benches/postgres.sh [ROUNDS] [SECS] [WRITERS]
#
# Needs initdb/pg_ctl (PATH or /usr/lib/postgresql/*/bin); as root they run
# as the `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
writers=${3:-4}

source benches/pg.sh
trap 'stop_pg; cleanup' EXIT
start_pg

pa=$((40000 + RANDOM % 10000)); pb=$((pa + 1)); ps=$((pa + 2))
node a "$pa" --store "$url" --poll-store-ms "${POLL_MS:-50}"
node b "$pb" --store "$url" --poll-store-ms "${POLL_MS:-50}"
node s "$ps"

bench() { # write-port check-port
    "$bin" bench --mode mutate --server "http://127.0.0.1:$1" --check-server "http://127.0.0.1:$2" \
        --concurrency "$writers" --duration-secs "$secs" --warmup-secs 1 --json
}
printf 'round\tsetup\tmutations/s\tack p50 ms\tack p99 ms\tvisible p50 ms\tvisible p99 ms\terrors\n'
for r in $(seq "$rounds"); do
    for setup in "sled:$ps:$ps" "pg A->A:$pa:$pa" "pg A->B:$pa:$pb"; do
        IFS=: read -r label w c <<<"$setup"
        bench "$w" "$c" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ms = lambda us: "%.2f" % (us / 1000)
print("\t".join([sys.argv[1], sys.argv[2], "%.0f" % r["calls_per_sec"], ms(r["p50_us"]), ms(r["p99_us"]),
                 ms(r["visible_p50_us"]), ms(r["visible_p99_us"]), str(r["errors"])]))' "$r" "$label"
    done
done
