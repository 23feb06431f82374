#!/usr/bin/env bash
# Three rampart nodes on one throwaway PostgreSQL cluster, and one node on
# sled, in one run (issue #12):
#  1. A -> B visibility at a fixed offered rate (open loop): writes through
#     node A at RATE mutations/s, each confirmed by a Check with
#     at_least_revision on node B; the same on the sled node (A -> A).
#  2. Acknowledged mutations/s with 1, 4 and 16 writers spread over the
#     three nodes (each writer in a tenant of its node's own, confirmed on
#     the node it wrote through); and the same writers on the sled node.
#  3. Check throughput on node A (PostgreSQL) and on the sled node, one
#     after the other (`bench --mode check`, 64 in flight): reads never
#     touch the database, so they should be equal.
# Everything listens on loopback and is stopped at exit.
#
#   [RATE=1000] bash benches/postgres3.sh [ROUNDS] [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
rate=${RATE:-1000}

source benches/pg.sh
trap 'stop_pg; cleanup' EXIT
start_pg

pa=$((40000 + RANDOM % 10000)); pb=$((pa + 1)); pc=$((pa + 2)); ps=$((pa + 3))
node a "$pa" --store "$url"
node b "$pb" --store "$url"
node c "$pc" --store "$url"
node s "$ps"
for p in "$pa" "$pb" "$pc" "$ps"; do
    for n in 0 1 2; do
        "$bin" ctl --server "127.0.0.1:$p" tenant create --tenant "bench-$p-$n" >/dev/null 2>&1 || true
    done
done

summary='
import json, sys
rs = [json.loads(l) for l in sys.stdin if l.strip()]
ms = lambda us: "%.2f" % (us / 1000)
calls = sum(r["calls_per_sec"] for r in rs)
errors = sum(r["errors"] for r in rs)
p = lambda k: max(r[k] for r in rs)
print("\t".join([sys.argv[1], sys.argv[2], "%.0f" % calls, ms(p("p50_us")), ms(p("p99_us")),
                 ms(p("visible_p50_us")), ms(p("visible_p99_us")), str(errors)]))'
bench() { # write-port check-port writers tenant-index [extra]
    "$bin" bench --mode mutate --server "http://127.0.0.1:$1" --check-server "http://127.0.0.1:$2" \
        --tenant "bench-$1-$4" --concurrency "$3" --duration-secs "$secs" --warmup-secs 1 --json "${@:5}"
}
checks() { # port
    "$bin" bench --mode check --server "http://127.0.0.1:$1" --concurrency 64 --connections 4 \
        --duration-secs "$secs" --warmup-secs 1 --json |
        python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.0f\t%.0f\t%d" % (r["calls_per_sec"], r["p99_us"], r["errors"]))'
}
printf 'round\tstore\tchecks/s\tp99 us\terrors\n'
for r in $(seq "$rounds"); do
    printf '%s\tpostgres\t%s\n' "$r" "$(checks "$pa")"
    printf '%s\tsled\t%s\n' "$r" "$(checks "$ps")"
done
printf 'round\tsetup\tmutations/s\tack p50 ms\tack p99 ms\tvisible p50 ms\tvisible p99 ms\terrors\n'
for r in $(seq "$rounds"); do
    bench "$ps" "$ps" 16 0 --rate "$rate" | python3 -c "$summary" "$r" "sled A->A open ${rate}/s"
    bench "$pa" "$pb" 16 0 --rate "$rate" | python3 -c "$summary" "$r" "pg A->B open ${rate}/s"
    for w in 1 4 16; do
        bench "$ps" "$ps" "$w" 1 | python3 -c "$summary" "$r" "sled ${w} writers"
        # Spread over the three nodes: 1 -> 1,0,0; 4 -> 2,1,1; 16 -> 6,5,5.
        split=$(python3 -c "w=$w; print(' '.join(str(w//3 + (1 if i < w%3 else 0)) for i in range(3)))")
        read -r wa wb wc <<<"$split"
        {
            i=0
            for pair in "$pa:$wa" "$pb:$wb" "$pc:$wc"; do
                IFS=: read -r port n <<<"$pair"
                if [ "$n" -gt 0 ]; then bench "$port" "$port" "$n" 2 & fi
            done
            wait
        } | python3 -c "$summary" "$r" "pg ${w} writers on 3 nodes"
    done
done
