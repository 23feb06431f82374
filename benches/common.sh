# Shared by the load scripts (flood.sh, costs.sh); sourced, not run.
# Sets: rounds, secs, bin, work (a temporary folder, removed at exit), pids
# (killed at exit: append every process started), token (a fresh `check`
# token) and "$work/tokens.toml" (its entry).

rounds=${1:-3}
secs=${2:-5}
bin=${RAMPART_BIN:-target/release/rampart}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" token new --scope check --name bench >"$work/new.txt"
token=$(sed -n 2p "$work/new.txt")
sed -n '/^\[\[token\]\]/,$p' "$work/new.txt" >"$work/tokens.toml"
grep -q sha256 "$work/tokens.toml"

# Waits (up to 10 s) until something listens on 127.0.0.1:PORT. A leader
# binds its port once it can serve.
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 10 s" >&2
    return 1
}
