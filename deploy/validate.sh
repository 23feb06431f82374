#!/usr/bin/env bash
# Validates every manifest in deploy/:
#  1. renders each kustomization (deploy/base, deploy/sidecar,
#     deploy/observability, deploy/postgres, deploy/postgres/sidecar) with
#     kubectl's kustomize, which fails on a bad kustomization or a missing
#     file;
#  2. checks every resource, as written and as rendered, against the
#     Kubernetes JSON schemas of the oldest and newest versions we support,
#     strictly: an unknown field, a wrong type or an unknown kind/apiVersion
#     is an error;
#  3. runs deploy/check_manifests.py: the hardening every container must
#     have, the probes, the grace periods, the store of a node on PostgreSQL
#     (a Secret, no local state), the Secrets and ConfigMaps pods read, the
#     tokens files against the token files, and the policy copies against
#     examples/quickstart;
#  4. parses deploy/envoy/envoy.yaml as an Envoy v3 bootstrap, every
#     typed_config included, with Envoy's own message definitions
#     (deploy/envoy/check_envoy.py; Envoy itself is not needed);
#  and, with RAMPART_BIN, checks deploy/envoy/rampart.toml with
#  `serve --print-config` (which builds its [ext_authz] mapping).
#
# Usage: bash deploy/validate.sh
#   RAMPART_BIN=target/release/rampart bash deploy/validate.sh
#     also checks that every `--flag` the manifests pass exists in that
#     binary's `serve --help` (and those of the exec probe deploy/README.md
#     shows, in its `health --help`), and validates the policy with it.
#
# The tools (deploy/requirements.txt, pinned) are installed from PyPI into a
# virtualenv, target/deploy-tools by default (RAMPART_DEPLOY_TOOLS to move
# it). They bring their schemas with them: validation needs no network.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
tools="${RAMPART_DEPLOY_TOOLS:-$root/target/deploy-tools}"
# The oldest Kubernetes the manifests need (native sidecars and the preStop
# sleep action are on by default from 1.30) and the newest we know.
versions=(1.30 1.37)
kustomizations=(base sidecar observability postgres postgres/sidecar)

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "deploy/validate.sh: needs Python 3.11 or later (found $("$python" --version 2>&1))" >&2
  exit 2
fi

stamp="$tools/.requirements.txt"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "installing the validation tools into $tools"
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check --no-input \
    -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
kubectl="$tools/bin/kubectl"
echo "kubectl $("$kubectl" version --client | tr '\n' ' ')"
echo "kubernetes-validate $("$tools/bin/kubernetes-validate" --version)"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# 1. Render.
rendered=()
for k in "${kustomizations[@]}"; do
  "$kubectl" kustomize "$here/$k" > "$out/${k//\//-}.yaml"
  rendered+=("$out/${k//\//-}.yaml")
  echo "rendered deploy/$k: $(grep -c '^kind:' "$out/${k//\//-}.yaml") resources"
done

# Every resource file as written: the YAML files beside each
# kustomization.yaml, but for the kustomization itself, the policy and
# patches (*-patch.yaml, which are no resources).
sources=()
for k in "${kustomizations[@]}"; do
  for f in "$here/$k"/*.yaml; do
    case "$(basename "$f")" in
      kustomization.yaml | policy.yaml | *-patch.yaml) ;;
      *) sources+=("$f") ;;
    esac
  done
done

# 2. Schemas. kubernetes-validate exits 0 after a WARN (e.g. "Couldn't find
# schema" for a mistyped apiVersion), so any line but INFO is a failure.
failed=0
for v in "${versions[@]}"; do
  log="$out/validate-$v.log"
  if ! "$tools/bin/kubernetes-validate" --strict -k "$v" "${sources[@]}" "${rendered[@]}" > "$log" 2>&1; then
    failed=1
  fi
  if grep -v '^INFO ' "$log" | sed "s|$out/|rendered |; s|$root/||" | grep .; then
    failed=1
  fi
  echo "Kubernetes $v schemas: $(grep -c '^INFO .* passed' "$log") resources passed"
done
if [ "$failed" != 0 ]; then
  echo "deploy/validate.sh: schema validation failed" >&2
  exit 1
fi

# 3. rampart's own rules.
"$tools/bin/python" "$here/check_manifests.py" --root "$root" "${rendered[@]}"

# 4. The Envoy example (deploy/envoy/envoy.yaml) against Envoy's own message
#    definitions: the descriptor set the envoy-types crate ships (cargo has
#    it in its registry once rampart has been built).
envoy_types="$(cd "$root" && cargo metadata --format-version 1 --locked 2>/dev/null \
  | "$tools/bin/python" -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "envoy-types"))')"
types_bin="$(dirname "$envoy_types")/src/generated/types.bin"
if [ ! -f "$types_bin" ]; then
  echo "deploy/validate.sh: no Envoy descriptor set at $types_bin (did envoy-types move it?)" >&2
  exit 1
fi
"$tools/bin/python" "$here/envoy/check_envoy.py" "$types_bin" "$here/envoy/envoy.yaml"

if [ -n "${RAMPART_BIN:-}" ]; then
  "$RAMPART_BIN" validate "$here/base/policy.yaml"
  "$RAMPART_BIN" serve --help > "$out/serve-help.txt"
  missing=0
  for flag in $(sed -n 's/^ *- \(--[a-z-]*\).*/\1/p' "$here"/base/*.yaml "$here"/sidecar/*.yaml \
      "$here"/postgres/*.yaml | sort -u); do
    if ! grep -q -- "$flag\b" "$out/serve-help.txt"; then
      echo "deploy/: \`$flag\` is not a flag of \`$RAMPART_BIN serve\`" >&2
      missing=1
    fi
  done
  # The RAMPART_* settings given to the servers as environment variables
  # (the sidecar's app holds RAMPART_SERVER/RAMPART_TOKEN, for ctl: not here).
  for var in $(sed -n 's/^ *- name: \(RAMPART_[A-Z_]*\).*/\1/p' "$here"/base/*.yaml \
      "$here"/postgres/*.yaml | sort -u); do
    if ! grep -q -- "env: $var\b" "$out/serve-help.txt"; then
      echo "deploy/: \`$var\` is not a variable of \`$RAMPART_BIN serve\`" >&2
      missing=1
    fi
  done
  # The exec probe deploy/README.md shows for a TLS pod ("Probes on a TLS pod").
  "$RAMPART_BIN" health --help > "$out/health-help.txt"
  probe_flags=$(sed -n '/^# In the rampart container/,/^```/p' "$here/README.md" | grep -o -- '--[a-z-]*' | sort -u)
  if [ -z "$probe_flags" ]; then
    echo "deploy/README.md: the exec probe example (\"# In the rampart container\") is gone" >&2
    missing=1
  fi
  for flag in $probe_flags; do
    if ! grep -q -- "$flag\b" "$out/health-help.txt"; then
      echo "deploy/README.md: the exec probe's \`$flag\` is not a flag of \`$RAMPART_BIN health\`" >&2
      missing=1
    fi
  done
  [ "$missing" = 0 ] || exit 1
  echo "every flag and RAMPART_* variable the manifests pass is one of \`rampart serve\`'s," \
    "and the README's exec probe's flags are \`rampart health\`'s"
  "$RAMPART_BIN" serve --config "$here/envoy/rampart.toml" --print-config | tail -n 1
fi
echo "deploy/: every manifest is valid"
