"""The pods of deploy/smoke.py: the rendered manifests made into local
processes (pods, volumes, environment, and the rewrites), and the helpers
the smoke test shares. deploy/smoke.py says what it does and why."""

import base64
import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = ("base", "sidecar")
# `smoke.py --postgres`: the nodes on PostgreSQL, and the sidecar following them.
POSTGRES_KUSTOMIZATIONS = ("postgres", "postgres/sidecar")
NAMESPACE = "rampart"  # the namespace deploy/README.md applies the manifests to
CLUSTER_DOMAIN = "cluster.local"
FIRST_POD_ADDR = 2  # 127.0.0.2

T0 = time.monotonic()


class SetupError(Exception):
    """Something the script cannot map or run: exit 2."""


class Failure(Exception):
    """An assertion that failed: exit 1."""


def log(msg):
    print(f"[{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------
# Rendering and the rendered objects.


def tools_dir():
    return Path(os.environ.get("RAMPART_DEPLOY_TOOLS") or ROOT / "target" / "deploy-tools")


def render(kustomizations):
    kubectl = tools_dir() / "bin" / "kubectl"
    if not kubectl.exists():
        raise SetupError(f"{kubectl} is missing: run `bash deploy/validate.sh` once (it installs it)")
    docs = []
    for k in kustomizations:
        out = subprocess.run([str(kubectl), "kustomize", str(DEPLOY / k)],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SetupError(f"kubectl kustomize deploy/{k} failed:\n{out.stderr}")
        for d in yaml.safe_load_all(out.stdout):
            if d:
                d["_from"] = f"deploy/{k}"
                docs.append(d)
    return docs


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def image_config():
    """ENV, WORKDIR and ENTRYPOINT of deploy/Dockerfile's last stage."""
    lines, cont = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            cont += raw.rstrip()[:-1] + " "
            continue
        lines.append(cont + raw)
        cont = ""
    last = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    env, workdir, entrypoint = {}, "/", None
    for line in lines[last + 1:]:
        word, _, rest = line.strip().partition(" ")
        word = word.upper()
        if word == "ENV":
            for pair in rest.split():
                if "=" not in pair:
                    raise SetupError(f"deploy/Dockerfile: cannot read `ENV {rest}` (use KEY=VALUE)")
                k, _, v = pair.partition("=")
                env[k] = v.strip('"')
        elif word == "WORKDIR":
            workdir = rest.strip()
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
    return env, workdir, entrypoint


# --------------------------------------------------------------------------
# Pods.


@dataclasses.dataclass
class Container:
    name: str
    spec: dict
    args: list = dataclasses.field(default_factory=list)
    env: dict = dataclasses.field(default_factory=dict)
    cwd: Path = None
    proc: subprocess.Popen = None
    log_path: Path = None
    started: float = 0.0
    restarts: int = 0


@dataclasses.dataclass
class Pod:
    name: str
    workload: str  # "StatefulSet/rampart-leader"
    kind: str
    labels: dict
    spec: dict
    addr: str
    dir: Path = None
    rampart: list = dataclasses.field(default_factory=list)  # Containers run here
    others: list = dataclasses.field(default_factory=list)  # container specs not run
    mounts: dict = dataclasses.field(default_factory=dict)  # container name -> {mountPath: local}
    ready_after: float = None
    sidecar: bool = False


def is_rampart(c):
    return c.get("image", "").split("/")[-1].split(":")[0].split("@")[0] == "rampart"


def make_pods(docs):
    workloads = [d for d in docs if d.get("kind") == "StatefulSet"] + \
                [d for d in docs if d.get("kind") == "Deployment"]
    for d in docs:
        if d.get("kind") in ("DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"):
            raise SetupError(f"{d['kind']}/{d['metadata']['name']}: this kind is not run by the smoke test")
    pods, n = [], FIRST_POD_ADDR
    for w in workloads:
        kind, wname = w["kind"], w["metadata"]["name"]
        spec = w["spec"]["template"]["spec"]
        for i in range(spec_replicas(w)):
            name = f"{wname}-{i}"
            if n > 8:
                raise SetupError("more pods than loopback addresses 127.0.0.2 to 127.0.0.8")
            pod = Pod(name=name, workload=f"{kind}/{wname}", kind=kind,
                      labels=w["spec"]["template"]["metadata"].get("labels") or {},
                      spec=spec, addr=f"127.0.0.{n}")
            n += 1
            for c in spec.get("initContainers") or []:
                if is_rampart(c):
                    if c.get("restartPolicy") != "Always":
                        raise SetupError(f"{pod.workload} init container {c['name']}: a rampart init "
                                         "container that is not a native sidecar (restartPolicy: Always)")
                    pod.rampart.append(Container(c["name"], c))
                    pod.sidecar = True
                else:
                    pod.others.append(c)
            for c in spec.get("containers") or []:
                (pod.rampart.append(Container(c["name"], c)) if is_rampart(c) else pod.others.append(c))
            if not pod.rampart:
                raise SetupError(f"{pod.workload}: no rampart container")
            pods.append(pod)
    return pods


def spec_replicas(w):
    r = w["spec"].get("replicas", 1)
    if not isinstance(r, int) or r < 1:
        raise SetupError(f"{w['kind']}/{w['metadata']['name']}: replicas {r!r}")
    return r


# --------------------------------------------------------------------------
# Volumes, the kubelet's way: keys behind `..data` symlinks.


def b64(s):
    return base64.b64decode(s)


def source_files(kind, obj):
    """{key: bytes} of a Secret or ConfigMap."""
    out = {}
    if kind == "Secret":
        out.update({k: b64(v) for k, v in (obj.get("data") or {}).items()})
        out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    else:
        out.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
        out.update({k: b64(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def write_atomic_volume(folder, files, modes):
    """The kubelet's AtomicWriter layout: ..<stamp>/ with the files, ..data ->
    ..<stamp>, and one symlink per top-level entry through ..data."""
    folder.mkdir(parents=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.0000001", time.gmtime())
    real = folder / stamp
    for rel, content in files.items():
        p = real / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        p.chmod(modes[rel])
    (folder / "..data").symlink_to(stamp)
    for top in sorted({rel.split("/")[0] for rel in files}):
        (folder / top).symlink_to(f"..data/{top}")


def materialize_volumes(pod, objects):
    """One folder per volume of the pod; returns {volume name: (folder, kind)}."""
    out = {}
    vols = {v["name"]: v for v in pod.spec.get("volumes") or []}
    claims = {}
    if pod.kind == "StatefulSet":
        w = objects["workloads"][pod.workload]
        claims = {t["metadata"]["name"]: t for t in w["spec"].get("volumeClaimTemplates") or []}
    for name in set(vols) | set(claims):
        folder = pod.dir / "volumes" / name
        if name in claims and name not in vols:
            folder.mkdir(parents=True)
            out[name] = (folder, f"PVC {name}-{pod.name} (an empty folder)")
            continue
        v = vols[name]
        kinds = [k for k in v if k != "name"]
        if kinds == ["emptyDir"]:
            folder.mkdir(parents=True)
            out[name] = (folder, "emptyDir (an empty folder)")
        elif kinds == ["persistentVolumeClaim"]:
            folder.mkdir(parents=True)
            out[name] = (folder, f"PVC {v['persistentVolumeClaim']['claimName']} (an empty folder)")
        elif kinds in (["secret"], ["configMap"]):
            kind = "Secret" if kinds == ["secret"] else "ConfigMap"
            src = v[kinds[0]]
            ref = src.get("secretName") if kind == "Secret" else src.get("name")
            obj = objects[kind].get(ref)
            if obj is None:
                if src.get("optional"):
                    folder.mkdir(parents=True)
                    out[name] = (folder, f"{kind} {ref} (optional, absent: empty)")
                    continue
                raise SetupError(f"{pod.workload} volume {name}: {kind} {ref} is not in the "
                                 "rendered manifests")
            data = source_files(kind, obj)
            default_mode = src.get("defaultMode", 0o644)
            files, modes = {}, {}
            if src.get("items"):
                for it in src["items"]:
                    if it["key"] not in data:
                        if src.get("optional"):
                            continue
                        raise SetupError(f"{pod.workload} volume {name}: {kind} {ref} has no key {it['key']}")
                    files[it["path"]] = data[it["key"]]
                    modes[it["path"]] = it.get("mode", default_mode)
            else:
                files = dict(data)
                modes = {k: default_mode for k in data}
            write_atomic_volume(folder, files, modes)
            out[name] = (folder, f"{kind} {ref} ({', '.join(sorted(files))})")
        else:
            raise SetupError(f"{pod.workload} volume {name}: {kinds} volumes are not mapped "
                             "by the smoke test")
    return out


def mount(pod, c, volumes):
    """{mountPath: local path} for one container."""
    mounts = {}
    for m in c.spec.get("volumeMounts") or []:
        if m["name"] not in volumes:
            raise SetupError(f"{pod.workload} container {c.name}: volumeMount {m['name']} names no volume")
        folder, what = volumes[m["name"]]
        local = folder
        if m.get("subPathExpr"):
            raise SetupError(f"{pod.workload} container {c.name}: subPathExpr is not mapped")
        if m.get("subPath"):
            local = folder / m["subPath"]
            if not local.exists() and not local.is_symlink():
                if "empty folder" in what:
                    local.mkdir(parents=True)
                else:
                    raise SetupError(f"{pod.workload} container {c.name}: subPath {m['subPath']} "
                                     f"is not in volume {m['name']}")
            local = local.resolve()
        mounts[m["mountPath"].rstrip("/") or "/"] = local
        log(f"  mount  {pod.name}/{c.name}: {m['mountPath']} <- {what}"
            f"{' subPath ' + m['subPath'] if m.get('subPath') else ''}")
    return mounts


# --------------------------------------------------------------------------
# Env and args, and the rewrites.


def resolve_env(pod, cspec, objects, image_env):
    env = dict(image_env)

    def key_ref(kind, ref, where):
        obj = objects[kind].get(ref["name"])
        if obj is None or ref["key"] not in source_files(kind, obj):
            if ref.get("optional"):
                return None
            raise SetupError(f"{pod.workload} container {cspec['name']}: {where}: {kind} "
                             f"{ref['name']} key {ref['key']} is not in the rendered manifests")
        return source_files(kind, obj)[ref["key"]].decode()

    for ef in cspec.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in ef:
                obj = objects[kind].get(ef[key]["name"])
                if obj is None:
                    if ef[key].get("optional"):
                        continue
                    raise SetupError(f"{pod.workload}: envFrom {kind} {ef[key]['name']} is missing")
                for k, v in source_files(kind, obj).items():
                    env[prefix + k] = v.decode()
    for e in cspec.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = expand(e.get("value", ""), env)
            continue
        vf = e["valueFrom"]
        if "secretKeyRef" in vf:
            v = key_ref("Secret", vf["secretKeyRef"], f"env {name}")
        elif "configMapKeyRef" in vf:
            v = key_ref("ConfigMap", vf["configMapKeyRef"], f"env {name}")
        elif "fieldRef" in vf:
            path = vf["fieldRef"]["fieldPath"]
            fields = {"metadata.name": pod.name, "metadata.namespace": NAMESPACE,
                      "status.podIP": pod.addr, "status.podIPs": pod.addr}
            if path not in fields:
                raise SetupError(f"{pod.workload} env {name}: fieldRef {path} is not mapped")
            v = fields[path]
        else:
            raise SetupError(f"{pod.workload} env {name}: valueFrom {sorted(vf)} is not mapped")
        if v is not None:
            env[name] = v
    return env


def expand(s, env):
    """Kubernetes' $(VAR) expansion ($$ escapes; an unknown $(VAR) stays)."""
    def sub(m):
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$\(|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, s)


class Rewriter:
    def __init__(self, pods, services, tmp, database=None):
        self.tmp = tmp
        self.pods = pods
        self.database = database  # smoke_postgres.Database, with --postgres
        # (DNS name, Service, the pods it selects, the pod a pod's own name
        # under a headless Service names) for every form of every name.
        self.names = []
        for sname, svc in services.items():
            sel = (svc.get("spec") or {}).get("selector") or {}
            backing = [p for p in pods if sel and all(p.labels.get(k) == v for k, v in sel.items())]
            forms = [f"{sname}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}", f"{sname}.{NAMESPACE}.svc",
                     f"{sname}.{NAMESPACE}", sname]
            for f in forms:
                self.names.append((f, svc, backing, None))
            # A StatefulSet pod's own name under its governing Service.
            for p in backing:
                if p.kind == "StatefulSet" and svc["spec"].get("clusterIP") == "None":
                    for f in forms:
                        self.names.append((f"{p.name}.{f}", svc, [p], p))
        self.names.sort(key=lambda t: -len(t[0]))

    def service_target(self, name, port):
        """(addr, port) for NAME:PORT, NAME any form of a Service's name."""
        for form, svc, backing, pod in self.names:
            if form == name:
                return self._target(form, svc, backing, pod, port)
        raise SetupError(f"`{name}` is not a Service in the rendered manifests")

    def _target(self, form, svc, backing, direct_pod, port):
        sname = svc["metadata"]["name"]
        if not backing:
            raise SetupError(f"Service {sname} selects no pod the smoke test runs")
        pod = backing[0]
        if direct_pod is not None:
            return pod.addr, port, pod
        for sp in svc["spec"].get("ports") or []:
            if sp["port"] == port:
                tp = sp.get("targetPort", port)
                if isinstance(tp, str):
                    named = [cp["containerPort"] for c in pod.rampart
                             for cp in c.spec.get("ports") or [] if cp.get("name") == tp]
                    if not named:
                        raise SetupError(f"Service {sname}: targetPort `{tp}` is no named port of {pod.name}")
                    tp = named[0]
                return pod.addr, tp, pod
        raise SetupError(f"Service {sname} has no port {port} (referenced as `{form}:{port}`)")

    def rewrite(self, pod, where, value, mounts):
        """The rewrites (a), (b), (c) of one arg or env value; prints each."""
        original = value
        notes = []
        # (e) a PostgreSQL URL: its hosts become the throwaway database's.
        if re.match(r"postgres(?:ql)?://", value):
            if self.database is None:
                raise SetupError(f"{pod.name} {where}: a PostgreSQL store URL; run the smoke test "
                                 "with --postgres (a throwaway database)")
            value = self.database.rewrite(value)
            log(f"  rewrite (e) {pod.name} {where}: {redact(original)!r} -> {redact(value)!r}")
            return value
        # (a) the pod's own addresses.
        if re.search(r"\[::1?\]", value):
            raise SetupError(f"{pod.name} {where}: an IPv6 address in `{value}` is not mapped")
        new = re.sub(r"(?<![\w.-])(0\.0\.0\.0|127\.0\.0\.1|localhost)(?=:\d)", pod.addr, value)
        if new != value:
            notes.append("a")
            value = new
        # (b) Service names, as the host of HOST:PORT or a URL.
        for form, svc, backing, direct in self.names:
            pat = re.compile(r"(?:(?<=//)|(?<==)|(?<=@)|^)" + re.escape(form)
                             + r"\.?(?::(\d+))?(?=[/\s,;]|$)")
            m = pat.search(value)
            if not m:
                continue
            if m.group(1) is None:
                if value[:m.start()].endswith("//"):
                    raise SetupError(f"{pod.name} {where}: Service `{form}` in `{original}` has no port: "
                                     "the smoke test cannot map a scheme's default port")
                continue  # a bare word (e.g. a service name for traces), not an address
            addr, port, target = self._target(form, svc, backing, direct, int(m.group(1)))
            value = value[:m.start()] + f"{addr}:{port}" + value[m.end():]
            notes.append(f"b: Service {svc['metadata']['name']} -> pod {target.name}"
                         + (f" (first of {len(backing)})" if len(backing) > 1 and direct is None else ""))
        # (c) mount paths, at the start of the value or after `--flag=`.
        flag, eq, rest = value.partition("=") if value.startswith("-") else ("", "", value)
        if rest.startswith("/"):
            for mp in sorted(mounts, key=len, reverse=True):
                if rest == mp or rest.startswith(mp.rstrip("/") + "/"):
                    local = str(mounts[mp]) + rest[len(mp.rstrip("/")):]
                    value = flag + eq + local
                    notes.append("c")
                    break
            else:
                raise SetupError(f"{pod.name} {where}: `{original}` is a path on no mounted volume "
                                 "(the image's filesystem is not mapped)")
        # What is left must be something that needs no mapping.
        for m in re.finditer(r"(?:(?<=//)|(?<==)|(?<=@)|^)([A-Za-z0-9][A-Za-z0-9.-]*):(\d+)", value):
            host = m.group(1)
            if not re.fullmatch(r"127\.0\.0\.\d+", host):
                raise SetupError(f"{pod.name} {where}: `{host}` in `{original}` is neither a Service of "
                                 "the rendered manifests nor the pod's own address")
        if value != original:
            shown = value.replace(str(self.tmp), "$SMOKE")
            log(f"  rewrite ({', '.join(notes)}) {pod.name} {where}: {original!r} -> {shown!r}")
        return value


def redact(url):
    """A database URL without its password, for the log."""
    return re.sub(r"^(postgres(?:ql)?://[^:@/]*):[^@/]*@", r"\1:***@", url)


def setting(c, flag):
    """A `rampart serve` setting of a container, after the rewrites: the
    flag (`--x=V` or `--x V`), else its RAMPART_* variable, else None."""
    for i, a in enumerate(c.args):
        if a.startswith(flag + "="):
            return a.partition("=")[2]
        if a == flag and i + 1 < len(c.args):
            return c.args[i + 1]
    return c.env.get("RAMPART_" + flag[2:].upper().replace("-", "_"))


def listen_addr(pod, c):
    listen = setting(c, "--listen")
    if not listen:
        raise SetupError(f"{pod.workload} container {c.name}: no --listen (the default is loopback only)")
    return listen
