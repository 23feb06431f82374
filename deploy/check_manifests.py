"""rampart's own rules for the rendered manifests of deploy/ (run by
deploy/validate.sh after the schema check): what a schema cannot say.

- Every pod: runAsNonRoot, seccomp RuntimeDefault, no service-account token.
- Every container: read-only root filesystem, no privilege escalation, all
  capabilities dropped, requests and limits for CPU and memory.
- Every rampart container: gRPC startup/readiness/liveness probes on the
  port it listens on, authentication (--tokens-file) when it listens beyond
  loopback, a follow token when it follows, a termination grace period
  longer than its preStop sleep plus --shutdown-grace-ms.
- Token files: each plain-text token's SHA-256 is in the tokens file that
  must accept it, with the scope it needs; tokens files hold hashes only.
- deploy/base/policy.yaml is a copy of examples/quickstart/policy.yaml.
- Trace sampling settings (OTEL_TRACES_SAMPLER and its ARG) that rampart
  understands.
"""

import argparse
import hashlib
import pathlib
import sys
import tomllib

import yaml

PORT = 50051
# The OTEL_TRACES_SAMPLER values rampart understands (server/otel.rs).
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


def flags(args):
    out = {}
    for a in args:
        if a.startswith("--"):
            name, _, value = a.partition("=")
            out[name] = value
    return out


def check_container(where, c, pod, is_rampart):
    sc = c.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        error(where, "securityContext.readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        error(where, "securityContext.allowPrivilegeEscalation must be false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        error(where, "securityContext.capabilities.drop must hold ALL")
    if sc.get("runAsUser") == 0 or sc.get("privileged"):
        error(where, "must not run as root or privileged")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(kind) or {}):
                error(where, f"resources.{kind}.{r} is missing")
    if not is_rampart:
        return
    args = c.get("args") or []
    if not args or args[0] != "serve":
        error(where, "a rampart container runs `serve`")
    f = flags(args)
    listen = f.get("--listen", "")
    if not listen.endswith(f":{PORT}"):
        error(where, f"--listen must be on port {PORT} (the probes' port)")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c.get(probe) or {}
        if (p.get("grpc") or {}).get("port") != PORT:
            error(where, f"{probe} must be a gRPC probe on port {PORT}")
    if not listen.startswith("127.") and "--tokens-file" not in f:
        error(where, "listens beyond loopback without --tokens-file")
    # Trace settings rampart would refuse (it would sample everything).
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    sampler = env.get("OTEL_TRACES_SAMPLER")
    if sampler is not None and sampler.strip().lower() not in SAMPLERS:
        error(where, f"OTEL_TRACES_SAMPLER `{sampler}` is not one of {', '.join(SAMPLERS)}")
    ratio = env.get("OTEL_TRACES_SAMPLER_ARG")
    if ratio is not None:
        try:
            ok = 0.0 <= float(ratio) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            error(where, f"OTEL_TRACES_SAMPLER_ARG `{ratio}` is not a ratio from 0 to 1")
    if "--insecure" in f:
        error(where, "--insecure has no place in these manifests")
    if "--follow" in f and "--follow-token-file" not in f:
        error(where, "a replica needs --follow-token-file (the leader wants a token)")
    if f.get("--data-dir") != "/data":
        error(where, "--data-dir must be /data (the only writable volume)")
    mounts = {m["mountPath"] for m in c.get("volumeMounts") or []}
    for flag in ("--data-dir", "--bootstrap", "--tokens-file", "--follow-token-file"):
        path = f.get(flag)
        if path and not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
            error(where, f"{flag}={path} is on no mounted volume")
    grace_ms = int(f.get("--shutdown-grace-ms", "5000"))
    sleep_s = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
    budget = pod.get("terminationGracePeriodSeconds", 30)
    if budget * 1000 < sleep_s * 1000 + grace_ms + 5000:
        error(where, f"terminationGracePeriodSeconds {budget} leaves under 5 s after "
                     f"the preStop sleep ({sleep_s} s) and --shutdown-grace-ms ({grace_ms})")


def check_workloads(docs):
    for d in docs:
        kind = d.get("kind")
        if kind not in ("Deployment", "StatefulSet"):
            continue
        name = f"{kind}/{d['metadata']['name']}"
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            error(name, "pod securityContext.runAsNonRoot must be true")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            error(name, "pod securityContext.seccompProfile.type must be RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            error(name, "automountServiceAccountToken must be false")
        containers = (pod.get("initContainers") or []) + (pod.get("containers") or [])
        seen = 0
        for c in containers:
            is_rampart = c["image"].split("/")[-1].split(":")[0] == "rampart"
            seen += is_rampart
            check_container(f"{name} container {c['name']}", c, pod, is_rampart)
        if seen != 1:
            error(name, f"expected one rampart container, found {seen}")
        if kind == "StatefulSet":
            if d["spec"].get("replicas") != 1:
                error(name, "the leader runs exactly one replica (no leader election)")
            if not d["spec"].get("volumeClaimTemplates"):
                error(name, "the leader keeps its store on a PersistentVolumeClaim")


def check_tokens(deploy):
    def tokens_file(path):
        spec = tomllib.loads(path.read_text())
        if set(spec) - {"token", "client_cert"}:
            error(path, f"unknown keys {sorted(set(spec) - {'token', 'client_cert'})}")
        out = {}
        for t in spec.get("token", []):
            h = t.get("sha256", "")
            if len(h) != 64 or any(ch not in "0123456789abcdef" for ch in h):
                error(path, f"token `{t.get('name')}`: sha256 must be 64 lowercase hex digits")
            if set(t) - {"name", "sha256", "scopes"}:
                error(path, f"token `{t.get('name')}`: only name, sha256 and scopes (no plain tokens)")
            out[h] = set(t.get("scopes", []))
        return out

    def plain(path):
        raw = path.read_text()
        token = raw.strip()
        if raw != token:
            # The Secret keeps the file's bytes: a client that puts the value
            # of RAMPART_TOKEN into its header as is would send a newline.
            error(f"deploy/{path.relative_to(deploy)}", "must hold the token alone, with no newline or spaces (write it with `printf %s`)")
        return hashlib.sha256(token.encode()).hexdigest()

    base = tokens_file(deploy / "base" / "tokens.toml")
    sidecar = tokens_file(deploy / "sidecar" / "tokens.toml")
    for token, accepted_by, scope in (
        ("base/replica-follow.token", base, "watch"),
        ("sidecar/follow.token", base, "watch"),
        ("sidecar/app.token", sidecar, "check"),
    ):
        scopes = accepted_by.get(plain(deploy / token))
        if scopes is None:
            error(f"deploy/{token}", "its SHA-256 is in no entry of the tokens file that must accept it")
        elif scope not in scopes and "operator" not in scopes:
            error(f"deploy/{token}", f"its entry lacks the `{scope}` scope")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=pathlib.Path, required=True)
    parser.add_argument("rendered", nargs="+", type=pathlib.Path)
    a = parser.parse_args()
    docs = [d for f in a.rendered for d in yaml.safe_load_all(f.read_text()) if d]
    check_workloads(docs)
    deploy = a.root / "deploy"
    check_tokens(deploy)
    quickstart = a.root / "examples" / "quickstart" / "policy.yaml"
    if (deploy / "base" / "policy.yaml").read_bytes() != quickstart.read_bytes():
        error("deploy/base/policy.yaml", "differs from examples/quickstart/policy.yaml: copy it again")
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if errors:
        print(f"deploy/check_manifests.py: {len(errors)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"rampart rules: {len(docs)} resources checked")


if __name__ == "__main__":
    main()
