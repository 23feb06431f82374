#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer): builds every target in
# fuzz/ and runs each for FUZZ_SECONDS (default 30) on a temporary copy of
# its committed seed corpus (fuzz/corpus/<target>/seed-*), so a run never
# grows the committed corpus. Any crash, panic, failed assertion or timeout
# fails the script; the input is printed (base64) and kept under
# fuzz/artifacts/<target>/. A summary table gives executions per second.
#
# Needs a nightly toolchain (libFuzzer's instrumentation is a nightly -Z
# flag): without one it says so and exits 0.
#
#   bash .ci/fuzz.sh                       # every target, 30 s each
#   FUZZ_SECONDS=60 bash .ci/fuzz.sh       # longer
#   bash .ci/fuzz.sh permission tokens_file  # some targets
#
# No sanitizer: rampart forbids unsafe code, so AddressSanitizer would only
# slow the build and the runs; debug assertions (overflow checks included)
# stay on.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FLAGS=(--sanitizer none --debug-assertions)

if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
  echo "no nightly toolchain: fuzzing skipped"
  exit 0
fi
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
cargo fuzz --version

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# cargo fuzz has no --locked: hold fuzz/Cargo.lock to fuzz/Cargo.toml here.
cargo fetch --locked --manifest-path fuzz/Cargo.toml --target "$(rustc -vV | sed -n 's/^host: //p')"

start=$SECONDS
cargo +nightly fuzz build "${FLAGS[@]}"
echo "fuzz build: $((SECONDS - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary="$work/summary"
printf '%-24s %12s %10s %10s %8s  %s\n' target runs exec/s new_units rss_mb result >"$summary"
failed=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/corpus/"$t"/seed-* "$corpus"/
  log="$work/$t.log"
  echo "--- $t: ${FUZZ_SECONDS} s on $(ls "$corpus" | wc -l) seeds"
  result=ok
  if ! cargo +nightly fuzz run "${FLAGS[@]}" "$t" "$corpus" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    result=FAILED
    failed=1
    grep -v '^#[0-9]' "$log" | tail -60
    mkdir -p fuzz/artifacts/"$t"
    for a in "$artifacts"/*; do
      [ -e "$a" ] || continue
      cp "$a" fuzz/artifacts/"$t"/
      echo "input $(basename "$a") (kept as fuzz/artifacts/$t/$(basename "$a")), base64:"
      base64 "$a" | head -c 20000
      echo
    done
  fi
  stat() { grep -m1 "stat::$1:" "$log" | awk '{print $2}'; }
  printf '%-24s %12s %10s %10s %8s  %s\n' "$t" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "$(stat new_units_added)" "$(stat peak_rss_mb)" "$result" >>"$summary"
done
echo
cat "$summary"
echo "fuzzing: $((SECONDS - start)) s in all"
if [ "$failed" -ne 0 ]; then
  echo "a fuzz target failed: reproduce with cargo +nightly fuzz run ${FLAGS[*]} <target> fuzz/artifacts/<target>/<input>"
  exit 1
fi
