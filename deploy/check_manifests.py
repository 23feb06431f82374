"""rampart's own rules for the rendered manifests of deploy/ (run by
deploy/validate.sh after the schema check): what a schema cannot say.

- Every pod: runAsNonRoot, seccomp RuntimeDefault, no service-account token.
- Every container: read-only root filesystem, no privilege escalation, all
  capabilities dropped, requests and limits for CPU and memory.
- Every rampart container: gRPC startup/readiness/liveness probes on the
  port it listens on, authentication (--tokens-file) when it listens beyond
  loopback, a follow token when it follows, a termination grace period
  longer than its preStop sleep plus --shutdown-grace-ms.
- A node on sled keeps its store in --data-dir=/data; a replica of some
  tenants (--tenants, with --follow) keeps none: no --data-dir, no writable
  volume. A node on PostgreSQL
  gets the URL from a Secret (RAMPART_STORE, secretKeyRef), a postgres://
  URL that names several hosts only with target_session_attrs=read-write,
  and has no --data-dir and no writable volume: it runs in a Deployment,
  with no PersistentVolumeClaim and no emptyDir.
- Every Secret and ConfigMap a pod reads (volumes, env, envFrom) is in the
  rendered manifests, with the key it reads.
- A Deployment of several rampart servers is spread over nodes, covered by
  a PodDisruptionBudget and selected by a Service.
- Token files: each plain-text token's SHA-256 is in the tokens file that
  must accept it, with the scope it needs; tokens files hold hashes only.
  A sidecar replica's follow token is confined (`tenants`) to tenants that
  cover the sidecar's --tenants: a leaked one reads no other tenant, and
  one that covers less would be refused by the leader.
- deploy/base/policy.yaml and deploy/postgres/policy.yaml are copies of
  examples/quickstart/policy.yaml.
- Trace sampling settings (OTEL_TRACES_SAMPLER and its ARG) that rampart
  understands.
"""

import argparse
import base64
import hashlib
import pathlib
import sys
import tomllib
import urllib.parse

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


def objects_of(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def keys_of(obj):
    """{key: bytes} of a rendered Secret or ConfigMap."""
    encoded, plain = ("data", "stringData") if obj["kind"] == "Secret" else ("binaryData", "data")
    out = {k: base64.b64decode(v) for k, v in (obj.get(encoded) or {}).items()}
    out.update({k: v.encode() for k, v in (obj.get(plain) or {}).items()})
    return out


def on_postgres(where, c, secrets):
    """Whether a rampart container's store is PostgreSQL (else sled), with
    the rules for its URL: from RAMPART_STORE through a secretKeyRef, never
    a flag or a plain value (it holds a password); a postgres:// URL; several
    hosts only with target_session_attrs=read-write."""
    f = flags(c.get("args") or [])
    if "--store" in f:
        error(where, "--store puts the database URL (and its password) in the pod spec: "
                     "give it as RAMPART_STORE from a Secret (secretKeyRef)")
    env = {e["name"]: e for e in c.get("env") or []}
    e = env.get("RAMPART_STORE")
    if e is None:
        return "--store" in f
    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
    if ref is None:
        error(where, "RAMPART_STORE must come from a Secret (valueFrom.secretKeyRef), "
                     "not a plain value: the URL holds a password")
        return True
    secret = secrets.get(ref.get("name"))
    value = keys_of(secret).get(ref.get("key")) if secret else None
    if value is None:
        return True  # check_references says so
    url = value.decode()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        error(where, f"Secret {ref['name']} key {ref['key']}: RAMPART_STORE must be a "
                     "postgres:// or postgresql:// URL")
        return True
    hosts = parts.netloc.rpartition("@")[2].split(",")
    attrs = urllib.parse.parse_qs(parts.query).get("target_session_attrs", [])
    if len(hosts) > 1 and attrs != ["read-write"]:
        error(where, f"Secret {ref['name']} key {ref['key']}: a URL with several hosts needs "
                     "target_session_attrs=read-write (else a node may connect to a standby)")
    if url != url.strip():
        error(where, f"Secret {ref['name']} key {ref['key']}: whitespace around the URL "
                     "(write the file with `printf %s`)")
    return True


def check_container(where, c, pod, is_rampart, pg_node=False):
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
    mounts = {m["mountPath"] for m in c.get("volumeMounts") or []}
    if pg_node:
        if "--data-dir" in f:
            error(where, "a node on PostgreSQL does not use --data-dir: drop it")
        if "--follow" in f:
            error(where, "a node on PostgreSQL cannot --follow (rampart refuses both)")
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            v = volumes.get(m["name"], {})
            if not m.get("readOnly") or "emptyDir" in v or "persistentVolumeClaim" in v:
                error(where, f"volume {m['name']} at {m['mountPath']}: a node on PostgreSQL keeps no "
                             "state locally (its mounts are read-only Secrets and ConfigMaps)")
    elif "--tenants" in f:
        # A replica of some tenants keeps its state in memory.
        if "--follow" not in f:
            error(where, "--tenants needs --follow (a leader holds every tenant)")
        if "--data-dir" in f:
            error(where, "a replica with --tenants keeps no store: drop --data-dir")
        for m in c.get("volumeMounts") or []:
            if not m.get("readOnly"):
                error(where, f"volume {m['name']} at {m['mountPath']}: a replica with --tenants "
                             "writes nothing (its mounts are read-only Secrets and ConfigMaps)")
    elif f.get("--data-dir") != "/data":
        error(where, "--data-dir must be /data (the only writable volume)")
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
        any_on_postgres = False
        for c in containers:
            is_rampart = c["image"].split("/")[-1].split(":")[0] == "rampart"
            seen += is_rampart
            where = f"{name} container {c['name']}"
            pg = is_rampart and on_postgres(where, c, objects_of(docs, "Secret"))
            any_on_postgres |= pg
            check_container(where, c, pod, is_rampart, pg)
        if seen != 1:
            error(name, f"expected one rampart container, found {seen}")
        if any_on_postgres:
            if kind != "Deployment":
                error(name, "nodes on PostgreSQL keep no state: run them as a Deployment")
            if d["spec"].get("replicas", 1) < 2:
                error(name, "run at least two nodes on PostgreSQL (any node takes writes)")
        server = any(c["image"].split("/")[-1].split(":")[0] == "rampart"
                     for c in pod.get("containers") or [])
        if kind == "Deployment" and server and d["spec"].get("replicas", 1) > 1:
            check_spread(name, d, docs)
        if kind == "StatefulSet":
            if d["spec"].get("replicas") != 1:
                error(name, "the leader runs exactly one replica (no leader election)")
            if not d["spec"].get("volumeClaimTemplates"):
                error(name, "the leader keeps its store on a PersistentVolumeClaim")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_spread(name, d, docs):
    """Several rampart servers (not sidecars): spread over nodes, a budget
    for drains, and a Service in front."""
    labels = d["spec"]["template"]["metadata"].get("labels") or {}
    pod = d["spec"]["template"]["spec"]
    if not any(t.get("topologyKey") == "kubernetes.io/hostname"
               and selects((t.get("labelSelector") or {}).get("matchLabels"), labels)
               for t in pod.get("topologySpreadConstraints") or []):
        error(name, "several rampart pods must be spread over nodes "
                    "(topologySpreadConstraints on kubernetes.io/hostname selecting them)")
    if not any(selects((p["spec"].get("selector") or {}).get("matchLabels"), labels)
               for p in docs if p.get("kind") == "PodDisruptionBudget"):
        error(name, "no PodDisruptionBudget selects its pods")
    if not any(selects((s.get("spec") or {}).get("selector"), labels)
               for s in docs if s.get("kind") == "Service"):
        error(name, "no Service selects its pods")


def check_references(docs):
    """Every Secret and ConfigMap a pod reads is rendered, with its keys
    (kustomize renames generated ones and rewrites the references it
    knows: a reference it left alone names nothing)."""
    objects = {"Secret": objects_of(docs, "Secret"), "ConfigMap": objects_of(docs, "ConfigMap")}

    def need(where, kind, ref_name, key=None, optional=False):
        if optional:
            return
        obj = objects[kind].get(ref_name)
        if obj is None:
            error(where, f"{kind} {ref_name} is not in the rendered manifests")
        elif key is not None and key not in keys_of(obj):
            error(where, f"{kind} {ref_name} has no key {key}")

    for d in docs:
        if d.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        name = f"{d['kind']}/{d['metadata']['name']}"
        pod = d["spec"]["template"]["spec"]
        for v in pod.get("volumes") or []:
            if "secret" in v:
                s = v["secret"]
                need(f"{name} volume {v['name']}", "Secret", s.get("secretName"), None, s.get("optional"))
                for it in s.get("items") or []:
                    need(f"{name} volume {v['name']}", "Secret", s.get("secretName"), it["key"], s.get("optional"))
            if "configMap" in v:
                s = v["configMap"]
                need(f"{name} volume {v['name']}", "ConfigMap", s.get("name"), None, s.get("optional"))
                for it in s.get("items") or []:
                    need(f"{name} volume {v['name']}", "ConfigMap", s.get("name"), it["key"], s.get("optional"))
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            where = f"{name} container {c['name']}"
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if field in vf:
                        r = vf[field]
                        need(f"{where} env {e['name']}", kind, r.get("name"), r.get("key"), r.get("optional"))
            for ef in c.get("envFrom") or []:
                for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if field in ef:
                        need(f"{where} envFrom", kind, ef[field].get("name"), None, ef[field].get("optional"))


def sidecar_tenants(docs):
    """The --tenants of the rampart containers that have them (sidecar
    replicas), together."""
    out = set()
    for d in docs:
        if d.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            tenants = flags(c.get("args") or []).get("--tenants")
            if tenants:
                out |= set(tenants.split(","))
    return out


def check_tokens(deploy, docs):
    def tokens_file(path):
        spec = tomllib.loads(path.read_text())
        if set(spec) - {"token", "client_cert"}:
            error(path, f"unknown keys {sorted(set(spec) - {'token', 'client_cert'})}")
        out = {}
        for t in spec.get("token", []):
            h = t.get("sha256", "")
            if len(h) != 64 or any(ch not in "0123456789abcdef" for ch in h):
                error(path, f"token `{t.get('name')}`: sha256 must be 64 lowercase hex digits")
            if set(t) - {"name", "sha256", "scopes", "tenants"}:
                error(path, f"token `{t.get('name')}`: only name, sha256, scopes and tenants (no plain tokens)")
            tenants = t.get("tenants")
            if tenants is not None and (not tenants or not all(isinstance(x, str) for x in tenants)):
                error(path, f"token `{t.get('name')}`: tenants must be a non-empty list of tenant ids")
            out[h] = (set(t.get("scopes", [])), None if tenants is None else set(tenants))
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
    postgres = tokens_file(deploy / "postgres" / "tokens.toml")
    held = sidecar_tenants(docs)
    for token, accepted_by, scope, confined in (
        ("base/replica-follow.token", ("base", base), "watch", False),
        ("sidecar/follow.token", ("base", base), "watch", True),
        # deploy/postgres/sidecar: the same sidecar, following the nodes.
        ("sidecar/follow.token", ("postgres", postgres), "watch", True),
        ("sidecar/app.token", ("sidecar", sidecar), "check", False),
    ):
        where, accepted = accepted_by
        entry = accepted.get(plain(deploy / token))
        if entry is None:
            error(f"deploy/{token}", f"its SHA-256 is in no entry of deploy/{where}/tokens.toml, "
                                     "which must accept it")
            continue
        scopes, tenants = entry
        if scope not in scopes and "operator" not in scopes:
            error(f"deploy/{token}", f"its entry in deploy/{where}/tokens.toml lacks the `{scope}` scope")
        if confined and tenants is None:
            error(f"deploy/{token}", f"its entry in deploy/{where}/tokens.toml has no `tenants`: a sidecar's "
                                     f"follow token should be confined to the tenants it holds ({', '.join(sorted(held))})")
        elif confined and held - tenants:
            error(f"deploy/{token}", f"its entry in deploy/{where}/tokens.toml is confined to "
                                     f"{', '.join(sorted(tenants))}, not the sidecar's --tenants "
                                     f"{', '.join(sorted(held - tenants))}: the leader would refuse it")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=pathlib.Path, required=True)
    parser.add_argument("rendered", nargs="+", type=pathlib.Path)
    a = parser.parse_args()
    docs = [d for f in a.rendered for d in yaml.safe_load_all(f.read_text()) if d]
    check_workloads(docs)
    check_references(docs)
    deploy = a.root / "deploy"
    check_tokens(deploy, docs)
    quickstart = a.root / "examples" / "quickstart" / "policy.yaml"
    for copy in ("base", "postgres"):
        if (deploy / copy / "policy.yaml").read_bytes() != quickstart.read_bytes():
            error(f"deploy/{copy}/policy.yaml", "differs from examples/quickstart/policy.yaml: copy it again")
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if errors:
        print(f"deploy/check_manifests.py: {len(errors)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"rampart rules: {len(docs)} resources checked")


if __name__ == "__main__":
    main()
