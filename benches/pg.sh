# A throwaway PostgreSQL cluster in "$work/pg" for the PostgreSQL load
# scripts (postgres.sh, postgres3.sh, pg_coldstart.sh); sourced, not run,
# after "$work" exists. Defines stop_pg (the caller's exit trap calls it)
# and start_pg, which sets url; and node NAME PORT ARGS... (with
# common.sh's bin, pids and wait_port), a rampart node on loopback.
# initdb/pg_ctl come from PATH or the newest /usr/lib/postgresql/*/bin; as
# root they run as the `postgres` user.

pgbin=$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
as_pg=()
if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
    chown postgres "$work"
fi
pgdata="$work/pg"
stop_pg() { "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true; }
start_pg() {
    local pgport=$((20000 + RANDOM % 20000))
    "${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U rampart --auth=trust >/dev/null
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -o "-p $pgport -k $work -h 127.0.0.1" -l "$work/pg.log" -w start >/dev/null
    url="postgres://rampart@127.0.0.1:$pgport/postgres"
}

# A `rampart serve` on 127.0.0.1:PORT with its data dir and log in
# "$work/NAME"; returns once it listens.
node() { # name port extra...
    local name=$1 port=$2
    shift 2
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/$name" \
        --consistency-wait-ms 5000 "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    wait_port "$port"
}
