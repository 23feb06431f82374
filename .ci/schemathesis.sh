#!/usr/bin/env bash
# Fuzzes the HTTP/JSON listener against its committed OpenAPI document
# (src/server/json/openapi.json) with schemathesis: serves
# examples/authzen-todo (its rampart.toml, a temporary data folder, free
# loopback ports), generates valid and invalid requests for every operation
# from the document, and fails when an answer breaks it:
#   status_code_conformance     a status the operation does not document (a
#                               500 included: none is documented; 501 for
#                               resource search and 503 for an unmet
#                               at_least_revision are, so not_a_server_error
#                               is not used)
#   content_type_conformance    a content type the status does not document
#   response_schema_conformance a body that does not fit the status's schema
#   response_headers_conformance a documented header missing or malformed
#   negative_data_rejection     a request the document calls invalid that
#                               was answered 2xx
#
# Usage: RAMPART_BIN=target/release/rampart bash .ci/schemathesis.sh
#   MAX_EXAMPLES (300) test cases per operation and phase (about 3,000 in
#   all, 35 s on 2 busy cores); SEED (20261207) makes a run repeatable
#   (another seed explores other inputs); the run is stopped, and fails,
#   after LIMIT_SECS (170).
#
# schemathesis (.ci/schemathesis-requirements.txt, pinned) is installed from
# PyPI into a virtualenv, target/schemathesis-tools by default
# (RAMPART_SCHEMATHESIS_TOOLS to move it), like deploy/validate.sh's tools.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"
bin="${RAMPART_BIN:-target/release/rampart}"
tools="${RAMPART_SCHEMATHESIS_TOOLS:-$root/target/schemathesis-tools}"
max_examples="${MAX_EXAMPLES:-300}"
limit_secs="${LIMIT_SECS:-170}"
seed="${SEED:-20261207}"

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo ".ci/schemathesis.sh: needs Python 3.10 or later (found $("$python" --version 2>&1))" >&2
  exit 2
fi
stamp="$tools/.requirements.txt"
if ! cmp -s "$here/schemathesis-requirements.txt" "$stamp" 2>/dev/null; then
  echo "installing schemathesis into $tools"
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check --no-input \
    -r "$here/schemathesis-requirements.txt"
  cp "$here/schemathesis-requirements.txt" "$stamp"
fi
echo "$("$tools/bin/schemathesis" --version)"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --config examples/authzen-todo/rampart.toml \
  --data-dir "$work/data" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --log-format json 2>"$work/serve.log" &
pid=$!

# The HTTP listener's address, from its startup line (port 0: the kernel
# chose it). The listener is bound once the policy is loaded.
addr=""
for _ in $(seq 300); do
  addr=$(sed -n 's/.*HTTP\/JSON.*"addr":"\([0-9.:]*\)".*/\1/p; s/.*"addr":"\([0-9.:]*\)".*HTTP\/JSON.*/\1/p' \
    "$work/serve.log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo ".ci/schemathesis.sh: rampart did not serve HTTP within 30 s:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
echo "rampart serves examples/authzen-todo at http://$addr"

# Run from the work folder: nothing (reports, example databases) is left in
# the repository.
status=0
(cd "$work" && timeout "$limit_secs" "$tools/bin/schemathesis" run "$root/src/server/json/openapi.json" \
  --url "http://$addr" \
  --checks status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection \
  --max-examples "$max_examples" --seed "$seed" \
  --generation-database none \
  --request-timeout 10 \
  --no-color) || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
  echo ".ci/schemathesis.sh: rampart exited during the run:" >&2
  tail -n 50 "$work/serve.log" >&2
  exit 1
fi
if [ "$status" = 124 ]; then
  echo ".ci/schemathesis.sh: schemathesis did not finish within $limit_secs s" >&2
  exit 1
fi
if [ "$status" != 0 ]; then
  echo ".ci/schemathesis.sh: schemathesis failed (exit $status); rerun with SEED=$seed to reproduce" >&2
  exit "$status"
fi
