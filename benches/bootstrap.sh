#!/usr/bin/env bash
# `rampart serve --bootstrap` of a 20,000-user policy (the one
# tests/bootstrap_crash.rs kills: 3 roles, 20,000 users, 20,000 bindings,
# 40,010 mutations), timed from spawn to the log lines "empty store
# bootstrapped" and "serving", on a fresh data dir each run. With two
# builds, the runs alternate (BENCHMARKS.md "Bootstrap of a 20,000-user
# policy").
#
# Usage: bash benches/bootstrap.sh [ROUNDS] [BINARY...]
#   (default 3 rounds of target/release/rampart; data dirs under $TMPDIR)
# Prints one line per run: round, binary, seconds to bootstrapped, seconds
# to serving.
set -euo pipefail

rounds=${1:-3}
shift || true
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/release/rampart)
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/policy.yaml" <<'EOF'
import sys
roles = ["readers", "writers", "reporters"]
out = ["catalog:",
       '  - { permission: "documents:view" }',
       '  - { permission: "documents:edit:?DOC?" }',
       '  - { permission: "reports:view" }',
       "tenants:", "  - id: big", "    name: Big Co", "    roles:",
       '      - { name: readers, grants: ["documents:view"] }',
       '      - { name: writers, grants: ["documents:view", "documents:edit:*"] }',
       '      - { name: reporters, grants: ["reports:view"] }',
       "    users:"]
out += [f"      - {{ id: user-{i:05}, email: user-{i:05}@big.test, display_name: User {i} }}" for i in range(20000)]
out += ["    bindings:"]
out += [f"      - {{ subject: user-{i:05}, role: {roles[i % 3]} }}" for i in range(20000)]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF

port=$((20000 + RANDOM % 20000))
now() { date +%s.%N; }
for round in $(seq "$rounds"); do
    for bin in "${bins[@]}"; do
        run="$round-$(basename "$(dirname "$bin")")-$RANDOM"
        data="$work/data-$run"
        log="$work/serve-$run.log"
        start=$(now)
        RUST_LOG=info "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" \
            --bootstrap "$work/policy.yaml" >"$log" 2>&1 &
        pid=$!
        boot=
        : >"$log"
        until grep -q "serving rampart.v1.Authorization" "$log"; do
            if [ -z "$boot" ] && grep -q "empty store bootstrapped" "$log"; then
                boot=$(now)
            fi
            kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
            sleep 0.02
        done
        serving=$(now)
        [ -n "$boot" ] || boot=$serving
        kill "$pid"
        wait "$pid" || true
        pid=
        rm -rf "$data" "$log"
        printf '%s %s %.2f %.2f\n' "$round" "$bin" \
            "$(echo "$boot - $start" | bc)" "$(echo "$serving - $start" | bc)"
    done
done
