#!/usr/bin/env bash
# AuthZEN over HTTP/1.1 keep-alive against Cerbos's HTTP check API: one fixed
# Todo decision (Morty may update his own todo: allow) asked of rampart's
# `POST /access/v1/evaluation` (examples/authzen-todo) and of Cerbos's
# `POST /api/check/resources` (benches/cerbos-todo, the same scenario written
# as a Cerbos policy), with the same wrk load, on this machine. Results and
# how to read them: BENCHMARKS.md, "AuthZEN over HTTP".
#
# Usage: CERBOS_BIN=/path/to/cerbos bash benches/authzen_http.sh [ROUNDS] [SECS]
#   ROUNDS (3): load runs of each server, alternating rampart and Cerbos, and
#     as many unloaded-latency runs (one connection, LAT_SECS=5 s) of each;
#     the table shows the medians.
#   SECS (10): the length of each load run; THREADS (2) and CONNS (32) are
#     wrk's -t and -c, the same for both servers.
#   CERBOS_BIN: the cerbos binary (default: `cerbos` on PATH). The npm
#     package @cerbos/cerbos-linux-x64 carries a static one:
#       npm pack @cerbos/cerbos-linux-x64 && tar xzf cerbos-cerbos-linux-x64-*.tgz
#     gives package/cerbos-linux-x64.
#   RAMPART_BIN (target/release/rampart; `cargo build --release` if missing).
#   RAMPART_* variables reach `rampart serve` as usual (a flag's variable
#     overrides examples/authzen-todo/rampart.toml).
# Needs wrk (Debian: apt-get install wrk) and curl. Both servers listen on
# loopback ports chosen free; both are stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rounds=${1:-3}
secs=${2:-10}
lat_secs=${LAT_SECS:-5}
threads=${THREADS:-2}
conns=${CONNS:-32}
bin=${RAMPART_BIN:-target/release/rampart}
cerbos=${CERBOS_BIN:-cerbos}
lua=$root/benches/authzen_http.lua

for tool in wrk curl python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "benches/authzen_http.sh: needs \`$tool\` (Debian: apt-get install $tool)" >&2
        exit 2
    fi
done
if ! command -v "$cerbos" >/dev/null 2>&1; then
    echo "benches/authzen_http.sh: no cerbos binary at \`$cerbos\`: set CERBOS_BIN" >&2
    echo "  (npm pack @cerbos/cerbos-linux-x64 && tar xzf cerbos-cerbos-linux-x64-*.tgz:" >&2
    echo "   package/cerbos-linux-x64)" >&2
    exit 2
fi
if [ ! -x "$bin" ]; then
    cargo build --release --locked
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# rampart: the example's config, its ports and data folder replaced.
"$bin" serve --config examples/authzen-todo/rampart.toml \
    --data-dir "$work/rampart-data" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --log-format json 2>"$work/rampart.log" &
pids+=($!)
rampart_pid=$!

# Cerbos: the Todo policy from disk, no audit log, no telemetry.
cerbos_port=$(free_port)
CERBOS_NO_TELEMETRY=1 "$cerbos" server --config="$root/benches/cerbos-todo/.cerbos.yaml" \
    --set=server.httpListenAddr="127.0.0.1:$cerbos_port" \
    --set=server.grpcListenAddr="127.0.0.1:$(free_port)" \
    --set=storage.disk.directory="$root/benches/cerbos-todo/policies" \
    --debug-listen-addr=127.0.0.1:0 --log-level=warn 2>"$work/cerbos.log" >&2 &
pids+=($!)
cerbos_pid=$!

rampart_addr=""
for _ in $(seq 300); do
    rampart_addr=$(sed -n 's/.*"addr":"\([0-9.:]*\)".*HTTP\/JSON.*/\1/p; s/.*HTTP\/JSON.*"addr":"\([0-9.:]*\)".*/\1/p' \
        "$work/rampart.log" | head -n 1)
    [ -n "$rampart_addr" ] && break
    kill -0 "$rampart_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$rampart_addr" ]; then
    echo "benches/authzen_http.sh: rampart did not serve HTTP within 30 s:" >&2
    cat "$work/rampart.log" >&2
    exit 1
fi
rampart_url="http://$rampart_addr/access/v1/evaluation"
cerbos_url="http://127.0.0.1:$cerbos_port/api/check/resources"

# The same question both ways. rampart is asked by the user id (the email,
# which is what Cerbos's principal id is); Cerbos keeps no users, so its
# request carries Morty's role.
rampart_body='{"subject":{"type":"user","id":"morty@the-citadel.com"},"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"todo-1","properties":{"ownerID":"morty@the-citadel.com"}}}'
cerbos_body='{"requestId":"bench","principal":{"id":"morty@the-citadel.com","roles":["editor"]},"resources":[{"actions":["can_update_todo"],"resource":{"kind":"todo","id":"todo-1","attr":{"ownerID":"morty@the-citadel.com"}}}]}'

# Both answer, and answer allow, before any load.
answer() { curl -sf -H 'content-type: application/json' -d "$2" "$1" 2>/dev/null; }
for _ in $(seq 300); do
    answer "$cerbos_url" "$cerbos_body" >/dev/null && break
    kill -0 "$cerbos_pid" 2>/dev/null || break
    sleep 0.1
done
got=$(answer "$rampart_url" "$rampart_body" || true)
case "$got" in *'"decision":true'*) ;; *)
    echo "benches/authzen_http.sh: rampart did not allow: $got" >&2
    exit 1 ;;
esac
got=$(answer "$cerbos_url" "$cerbos_body" || true)
case "$got" in *'"can_update_todo":"EFFECT_ALLOW"'*) ;; *)
    echo "benches/authzen_http.sh: Cerbos did not allow: $got" >&2
    cat "$work/cerbos.log" >&2
    exit 1 ;;
esac

cerbos_version=$("$cerbos" --version 2>/dev/null | head -n 1)
echo "$("$bin" --version 2>/dev/null | head -n 1) at $rampart_url"
echo "cerbos $cerbos_version at $cerbos_url"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
    "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"

tick=$(getconf CLK_TCK)
# CPU seconds (user + system) PID has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
load1() { cut -d ' ' -f 1 /proc/loadavg; }

# run NAME PID URL BODY WRK-ARGS...: one wrk run; appends
# "rps p50_us p99_us cpu_us_per_request" to $work/NAME.KIND.
run() {
    local name=$1 pid=$2 url=$3 body=$4 kind=$5
    shift 5
    local load before after line requests duration errors
    load=$(load1)
    before=$(cpu_ticks "$pid")
    line=$(WRK_BODY="$body" wrk "$@" -s "$lua" "$url" | grep '^RESULT ')
    after=$(cpu_ticks "$pid")
    requests=$(sed 's/.* requests=\([0-9]*\).*/\1/' <<<"$line")
    duration=$(sed 's/.* duration_us=\([0-9]*\).*/\1/' <<<"$line")
    errors=$(awk '{ n = 0; for (i = 7; i <= NF; i++) { split($i, kv, "="); n += kv[2] } print n }' <<<"$line")
    awk -v r="$requests" -v d="$duration" -v c="$((after - before))" -v t="$tick" \
        -v p50="$(sed 's/.* p50_us=\([0-9]*\).*/\1/' <<<"$line")" \
        -v p99="$(sed 's/.* p99_us=\([0-9]*\).*/\1/' <<<"$line")" \
        'BEGIN { printf "%.0f %d %d %.1f\n", r / (d / 1e6), p50, p99, (r ? c / t * 1e6 / r : 0) }' \
        >>"$work/$name.$kind"
    printf '  %-8s %-8s load %-5s %s req/s, p50 %s us, p99 %s us, server CPU %s us/request, errors %s\n' \
        "$name" "$kind" "$load" $(tail -n 1 "$work/$name.$kind") "$errors"
    if [ "$errors" != 0 ]; then
        echo "benches/authzen_http.sh: $name answered $errors requests with an error or not at all" >&2
        exit 1
    fi
}

echo
echo "load: wrk -t$threads -c$conns -d${secs}s, $rounds runs each, alternating"
for round in $(seq "$rounds"); do
    run rampart "$rampart_pid" "$rampart_url" "$rampart_body" load -t"$threads" -c"$conns" -d"${secs}s"
    run cerbos "$cerbos_pid" "$cerbos_url" "$cerbos_body" load -t"$threads" -c"$conns" -d"${secs}s"
done
echo "unloaded latency: wrk -t1 -c1 -d${lat_secs}s, $rounds runs each, alternating"
for round in $(seq "$rounds"); do
    run rampart "$rampart_pid" "$rampart_url" "$rampart_body" latency -t1 -c1 -d"${lat_secs}s"
    run cerbos "$cerbos_pid" "$cerbos_url" "$cerbos_body" latency -t1 -c1 -d"${lat_secs}s"
done

# median FILE COLUMN
median() { cut -d ' ' -f "$2" "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
row() {
    local label=$1 kind=$2 col=$3 r c
    r=$(median "$work/rampart.$kind" "$col")
    c=$(median "$work/cerbos.$kind" "$col")
    printf '%-36s %12s %12s %8s\n' "$label" "$r" "$c" "$(awk -v r="$r" -v c="$c" -v col="$col" \
        'BEGIN { if (r == 0 || c == 0) print "-"; else if (col == 1) printf "%.2fx", r / c; else printf "%.2fx", c / r }')"
}
echo
printf '%-36s %12s %12s %8s\n' "median of $rounds runs" rampart cerbos ratio
row "throughput, -t$threads -c$conns (req/s)" load 1
row "  p50 under load (us)" load 2
row "  p99 under load (us)" load 3
row "  server CPU per request (us)" load 4
row "unloaded p50, -t1 -c1 (us)" latency 2
row "unloaded p99, -t1 -c1 (us)" latency 3
echo "(ratio: rampart's advantage; throughput rampart/cerbos, times and CPU cerbos/rampart)"
