#!/usr/bin/env bash
# Runs the manifests of deploy/ as local processes, without a cluster: a
# leader, two replicas and the sidecar replica, with authentication on (or,
# with --postgres, three nodes on PostgreSQL and the sidecar replica). See
# deploy/smoke.py for what it runs, the rewrites it makes and what it checks.
#
# Usage: RAMPART_BIN=target/release/rampart bash deploy/smoke.sh [--postgres] [--keep]
#   --postgres runs deploy/postgres (three nodes on one database) and
#     deploy/postgres/sidecar instead, on a throwaway PostgreSQL cluster
#     (initdb/pg_ctl from the `postgresql` package; as root they run as the
#     `postgres` user), stopped and removed at the end.
#   OTLP_SINK_BIN=target/release/examples/otlp_sink also checks the traces.
#
# It uses the tools deploy/validate.sh installs (kubectl for `kubectl
# kustomize`, PyYAML) and runs validate.sh first if they are missing or
# out of date. Linux only: each pod gets its own 127.0.0.x address.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
tools="${RAMPART_DEPLOY_TOOLS:-$root/target/deploy-tools}"
if [ -z "${RAMPART_BIN:-}" ]; then
  echo "deploy/smoke.sh: set RAMPART_BIN to the rampart binary, e.g. RAMPART_BIN=target/release/rampart" >&2
  exit 2
fi
if ! cmp -s "$here/requirements.txt" "$tools/.requirements.txt" 2>/dev/null; then
  echo "deploy/smoke.sh: the deploy tools are missing or out of date: running deploy/validate.sh"
  bash "$here/validate.sh"
fi
exec "$tools/bin/python" "$here/smoke.py" "$@"
