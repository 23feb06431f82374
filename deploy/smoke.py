"""A smoke test of deploy/ without a cluster: runs the rendered manifests as
local processes and proves that the leader, the two replicas and the
sidecar replica work together with authentication on.

Run it through deploy/smoke.sh (which installs the tools if needed):

    RAMPART_BIN=target/release/rampart bash deploy/smoke.sh
    RAMPART_BIN=target/release/rampart bash deploy/smoke.sh --postgres

With --postgres it runs deploy/postgres and deploy/postgres/sidecar instead
(three nodes on one PostgreSQL database, and the sidecar replica following
Service rampart), on a throwaway PostgreSQL cluster (deploy/smoke_postgres.py);
the differences are marked "--postgres" below.

What it does:
 1. Renders deploy/base and deploy/sidecar with `kubectl kustomize` (the
    tools of deploy/validate.sh, in target/deploy-tools or
    RAMPART_DEPLOY_TOOLS).
 2. Makes one pod per replica of each StatefulSet and Deployment, and starts
    every rampart container in it (the leader StatefulSet: 1 pod; the
    replica Deployment: 2; demo-app: its native sidecar) as RAMPART_BIN with
    the container's exact `args` and `env`: `value`, `valueFrom`
    secretKeyRef/configMapKeyRef/fieldRef, `envFrom` and `$(VAR)` in args
    resolved from the rendered Secrets and ConfigMaps. The image's own ENV
    (from deploy/Dockerfile's last stage) comes first; nothing is inherited
    from this shell. Each volumeMount is a fresh folder laid out as the
    kubelet does: the Secret's or ConfigMap's keys (with `items`, `subPath`
    and the modes) behind `..data` symlinks, or empty for an emptyDir and a
    PersistentVolumeClaim. The image's WORKDIR is the working directory.
    Other containers (the demo app's busybox) are not run. Pods are named
    WORKLOAD-0, WORKLOAD-1, ... (no ReplicaSet hash).
 3. Waits for each pod as the kubelet does: polls its startup probe, then
    its readiness probe. The probes are native gRPC probes; each is sent
    as a real grpc.health.v1.Health/Check, with no token, by `RAMPART_BIN
    health` (the probe's port and service, its timeoutSeconds as
    --timeout-ms): exit 0 and SERVING on stdout is a pass, and any other
    exit code is checked against the command's contract (1 with the
    status on stdout, 69 with nothing). Approximation: the probes are
    polled every 0.25 s instead of their periodSeconds, to keep the run
    short.
 4. Asserts, through the Services and the pods' addresses:
    (i)   an Admin change through Service rampart-leader with the example
          operator token (deploy/README.md): add a user to tenant acme and
          bind it to role viewers;
    (ii)  both replicas (with the example orders-svc token) and the sidecar
          (as its app: the app container's RAMPART_SERVER and RAMPART_TOKEN)
          allow that user at the revision the change returned
          (`ctl check --at-least-revision`, retried for up to 30 s), and
          so does Service rampart (the way applications reach replicas);
    (iii) a call without a token is refused UNAUTHENTICATED on every pod, an
          Admin call on the leader too, and the sidecar refuses the
          orders-svc token;
    (iv)  every --metrics-listen serves rampart_snapshot_revision at least
          that revision, and a replica's shows rampart_replica_lag_revisions;
    (v)   SIGTERM to every process (the preStop sleep is skipped) ends it
          with exit code 0 within its pod's terminationGracePeriodSeconds.
    With OTLP_SINK_BIN (target/release/examples/otlp_sink), also that the
    sink received spans from the leader.
    --postgres: (i) the first change goes through Service rampart, the
    second straight to another node (any node takes writes); (ii) every
    node and the sidecar allow the user; (iii) every node refuses an Admin
    call without a token; and before (v), (outage): the database is
    stopped, every node stays SERVING (gRPC health, the probes' service)
    and allows the check from its last snapshot, a write is refused
    UNAVAILABLE naming the store; the database is started again and a
    write goes through within 30 s, seen by every node.
 5. Prints a report; exits 1 on any failure, 2 on a setup error. Every
    process it started is killed and its temporary folder removed in all
    cases (--keep keeps the folder, with the logs).

The only rewrites, each printed when applied:
 (a) Each pod gets its own loopback address: 127.0.0.2 for the first pod
     (the leader), then 127.0.0.3, 127.0.0.4 (the replicas), 127.0.0.5 (the
     sidecar pod). `0.0.0.0`, `127.0.0.1` and `localhost` as the host of a
     HOST:PORT in the pod's args and env become that address, so the
     listeners, the metrics listeners and the app's localhost traffic stay
     inside the pod's address.
 (b) A Service's DNS name in args or env (`rampart-leader`,
     `rampart-leader.rampart.svc.cluster.local`, ...; and the StatefulSet's
     `rampart-leader-0.rampart-leader-headless`) becomes the address of the
     pod behind it, found from the rendered Services' selectors, and the
     Service port becomes the targetPort (resolved by name in the pod).
 (c) A mount path at the start of a value (`/data`, `/etc/rampart/tokens/...`)
     becomes the local folder of that volume.
 (d) With OTLP_SINK_BIN only: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.9:4317
     and OTEL_SERVICE_NAME=<pod name> are added to every rampart container's
     env (the service name lets the sink tell the pods apart).
 (e) --postgres only: the hosts of a postgres:// URL (RAMPART_STORE, from
     its Secret) become the throwaway cluster's 127.0.0.1:PORT; the role,
     password, database and parameters stay as written (the cluster is made
     with that role and database, and trusts loopback connections).
Anything the script cannot map (another volume type, a DNS name that is no
Service, an absolute path on no volume, an exec/http probe, service links,
an IPv6 address) stops it with an error naming it.

What it does not prove: no kubelet (no restarts, liveness probes, resource
limits, users or read-only filesystems), no image (the binary runs from the
host, not the distroless image), no kube-proxy or DNS (a Service is one
pod's address), no network policies, no PVC semantics (an empty folder), no
rolling updates.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import urllib.request
from pathlib import Path

import smoke_postgres
from smoke_pods import (
    DEPLOY,
    KUSTOMIZATIONS,
    POSTGRES_KUSTOMIZATIONS,
    Failure,
    Rewriter,
    SetupError,
    T0,
    by_kind,
    expand,
    image_config,
    listen_addr,
    log,
    make_pods,
    materialize_volumes,
    mount,
    render,
    resolve_env,
    setting,
)

OTLP_ADDR = ("127.0.0.9", 4317)
PROBE_POLL_S = 0.25
READY_BUDGET_S = 30.0
CHECK_BUDGET_S = 30.0
NEW_USER = "smoke-user"
NEW_ROLE = "viewers"
NEW_PERMISSION = "reports:view"  # what `viewers` grants in examples/quickstart/policy.yaml
CHECK_NEW_USER = ("check", "--tenant", "acme", "--subject", NEW_USER, "--permission", NEW_PERMISSION)


# --------------------------------------------------------------------------
# The run.


class Smoke:
    def __init__(self, bin_path, sink_bin, keep, postgres):
        self.bin = bin_path
        self.sink_bin = sink_bin
        self.keep = keep
        self.postgres = postgres
        self.kustomizations = POSTGRES_KUSTOMIZATIONS if postgres else KUSTOMIZATIONS
        self.database = None  # smoke_postgres.Database, with --postgres
        self.tmp = Path(tempfile.mkdtemp(prefix="rampart-smoke-"))
        self.procs = []  # every Popen started, to kill on the way out
        self.passed = []
        self.sink = None

    # --- processes

    def spawn(self, argv, env, cwd, log_path, append=False):
        f = open(log_path, "ab" if append else "wb")
        try:
            p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            f.close()
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # its own session: the process and its children
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def ctl(self, env, *args, timeout=15):
        """`rampart ctl -o json ARGS` with only the given env (no token leaks
        in from this shell)."""
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RAMPART_OUTPUT": "json"}
        full.update(env)
        try:
            return subprocess.run([self.bin, "ctl", *args], env=full, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"`rampart ctl {' '.join(args)}` to {env.get('RAMPART_SERVER')} did not end "
                          f"within {timeout}s") from e

    def health(self, addr, port, service="", timeout=1.0):
        """`rampart health` against ADDR:PORT, as a gRPC probe asks: the
        status the server answered (SERVING, NOT_SERVING, ...), or
        `no answer (...)` with the reason the command gave. Its exit code
        must agree with what it printed."""
        argv = [self.bin, "health", "--server", f"http://{addr}:{port}", "--service", service,
                "--timeout-ms", str(max(1, int(timeout * 1000)))]
        try:
            r = subprocess.run(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                               capture_output=True, text=True, timeout=timeout + 10, check=False)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"`rampart health` to {addr}:{port} did not end within {timeout + 10:.0f}s "
                          f"(its --timeout-ms is {timeout * 1000:.0f})") from e
        status, why = r.stdout.strip(), r.stderr.strip()
        if r.returncode == 2:
            raise SetupError(f"`{' '.join(argv[1:])}`: usage error: {why}")
        # 0: SERVING; 1: another answer (the status on stdout, or none for
        # an error status); 69: no answer. Every failure says why on stderr.
        expected = {0: status == "SERVING" and not why, 1: status != "SERVING" and bool(why),
                    69: status == "" and bool(why)}
        if not expected.get(r.returncode, False):
            raise Failure(f"`rampart health` to {addr}:{port}: exit {r.returncode} with stdout {status!r} "
                          f"and stderr {why!r} break its contract (rampart health --help)")
        if r.returncode == 69:
            return f"no answer ({why})"
        return status or f"an error ({why})"

    def passed_(self, msg):
        self.passed.append(msg)
        log(f"PASS {msg}")

    # --- setup

    def setup(self):
        docs = render(self.kustomizations)
        log(f"rendered {', '.join('deploy/' + k for k in self.kustomizations)}: {len(docs)} resources")
        objects = {"Secret": by_kind(docs, "Secret"), "ConfigMap": by_kind(docs, "ConfigMap"),
                   "workloads": {f"{d['kind']}/{d['metadata']['name']}": d for d in docs
                                 if d.get("kind") in ("StatefulSet", "Deployment")}}
        self.docs, self.objects = docs, objects
        self.services = by_kind(docs, "Service")
        image_env, workdir, entrypoint = image_config()
        self.pods = make_pods(docs)
        url = smoke_postgres.store_url(self.pods, objects, image_env)
        if self.postgres:
            if url is None:
                raise SetupError("--postgres, but no rampart container has a store URL (RAMPART_STORE)")
            self.database = smoke_postgres.Database(*smoke_postgres.parse(url))
            self.database.start()
        self.rw = Rewriter(self.pods, self.services, self.tmp, self.database)
        for pod in self.pods:
            if pod.spec.get("enableServiceLinks", True) is not False:
                raise SetupError(f"{pod.workload}: enableServiceLinks is on; the smoke test does not "
                                 "emulate the *_SERVICE_HOST variables")
            pod.dir = self.tmp / pod.name
            log(f"pod {pod.name} ({pod.workload}) at {pod.addr}")
            volumes = materialize_volumes(pod, objects)
            for c in pod.rampart:
                cmd = c.spec.get("command")
                if cmd and cmd != entrypoint and cmd != ["rampart"]:
                    raise SetupError(f"{pod.workload} container {c.name}: command {cmd} is not the image's "
                                     f"entrypoint {entrypoint}")
                for p in ("startupProbe", "readinessProbe"):
                    if p in c.spec and "grpc" not in c.spec[p]:
                        raise SetupError(f"{pod.workload} container {c.name}: {p} is not a gRPC probe")
                mounts = mount(pod, c, volumes)
                pod.mounts[c.name] = mounts
                env = resolve_env(pod, c.spec, objects, image_env)
                c.env = {k: self.rw.rewrite(pod, f"env {k}", v, mounts) for k, v in env.items()}
                args = [expand(a, env) for a in c.spec.get("args") or []]
                c.args = [self.rw.rewrite(pod, "arg", a, mounts) for a in args]
                wd = c.spec.get("workingDir") or workdir
                c.cwd = mounts.get(wd.rstrip("/") or "/")
                if c.cwd is None:
                    c.cwd = pod.dir / "workdir"  # the image's empty WORKDIR
                    c.cwd.mkdir(parents=True, exist_ok=True)
                if self.sink_bin:
                    endpoint = f"http://{OTLP_ADDR[0]}:{OTLP_ADDR[1]}"
                    c.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
                    c.env.setdefault("OTEL_SERVICE_NAME", pod.name)
                    log(f"  rewrite (d) {pod.name}: env OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}, "
                        f"OTEL_SERVICE_NAME={c.env['OTEL_SERVICE_NAME']}")
            for o in pod.others:
                log(f"  not run: container {o['name']} (image {o.get('image')})")

    def check_ports_free(self):
        wanted = [(OTLP_ADDR, "the OTLP sink")] if self.sink_bin else []
        for pod in self.pods:
            for c in pod.rampart:
                for cp in c.spec.get("ports") or []:
                    wanted.append(((pod.addr, cp["containerPort"]),
                                   f"{pod.name}/{c.name} port {cp.get('name')}"))
        for (addr, port), what in wanted:
            s = socket.socket()
            # As rampart (tokio) binds: a connection in TIME_WAIT is no conflict.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError as e:
                raise SetupError(f"{addr}:{port} ({what}) is not free: {e}. A smoke test still running, "
                                 "or a process listening on 0.0.0.0 on that port?") from e
            finally:
                s.close()

    # --- the steps

    def start(self):
        if self.sink_bin:
            self.sink = self.spawn([self.sink_bin, f"{OTLP_ADDR[0]}:{OTLP_ADDR[1]}"],
                                   {"PATH": "/usr/bin:/bin"}, self.tmp, self.tmp / "otlp_sink.log")
            self.sink_out = self.tmp / "otlp_sink.log"
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(OTLP_ADDR, timeout=0.5).close()
                    break
                except OSError:
                    if self.sink.poll() is not None or time.monotonic() > deadline:
                        raise SetupError(f"the OTLP sink did not start:\n{self.tail(self.sink_out)}")
                    time.sleep(0.1)
            log(f"OTLP sink {self.sink_bin} listening on {OTLP_ADDR[0]}:{OTLP_ADDR[1]}")
        # All at once, as `kubectl apply -k deploy/base` then `-k deploy/sidecar`
        # would: the replicas must find the leader by themselves.
        for pod in self.pods:
            for c in pod.rampart:
                c.log_path = pod.dir / f"{c.name}.log"
                c.proc = self.spawn([self.bin, *c.args], c.env, c.cwd, c.log_path)
                c.started = time.monotonic()
                log(f"started {pod.name}/{c.name}: pid {c.proc.pid}, rampart {' '.join(c.args[:1])} "
                    f"({len(c.args) - 1} args, {len(c.env)} env)")

    def tail(self, path, n=6):
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            return "    (no log)"
        return "\n".join("    " + (line if len(line) <= 300 else line[:300] + "...") for line in lines[-n:])

    def wait_ready(self):
        deadline = time.monotonic() + READY_BUDGET_S
        pending = {(pod.name, c.name): (pod, c) for pod in self.pods for c in pod.rampart}
        phase = {k: "startupProbe" for k in pending}
        last = {}
        while pending:
            for key, (pod, c) in list(pending.items()):
                if c.proc.poll() is not None:
                    raise Failure(f"{pod.name}/{c.name} exited with code {c.proc.returncode} before it "
                                  "was ready (its log is below)")
                probe = c.spec.get(phase[key]) or {}
                if not probe:
                    phase[key] = "readinessProbe"
                    probe = c.spec.get("readinessProbe") or {}
                if not probe:
                    del pending[key]
                    continue
                g = probe["grpc"]
                status = self.health(pod.addr, g["port"], g.get("service", ""),
                                     timeout=probe.get("timeoutSeconds", 1))
                last[key] = status
                if status != "SERVING":
                    continue
                if phase[key] == "startupProbe":
                    phase[key] = "readinessProbe"
                    continue  # the readiness probe runs next
                del pending[key]
                pod.ready_after = time.monotonic() - c.started
                log(f"ready {pod.name}/{c.name}: startup and readiness probes (`rampart health` on "
                    f"{pod.addr}:{g['port']}) SERVING after {pod.ready_after:.1f}s")
            if pending and time.monotonic() > deadline:
                lines = [f"  {p.name}/{c.name}: its {phase[k]} last answered {last.get(k)}"
                         for k, (p, c) in pending.items()]
                raise Failure(f"not ready within {READY_BUDGET_S:.0f}s:\n" + "\n".join(lines))
            if pending:
                time.sleep(PROBE_POLL_S)
        self.passed_(f"all {sum(len(p.rampart) for p in self.pods)} rampart containers in "
                     f"{len(self.pods)} pods started together and became ready (`rampart health`, no token)")

    def example_tokens(self):
        """The example tokens deploy/README.md publishes, checked against the
        tokens files the pods that must accept them read."""
        readme = (DEPLOY / "README.md").read_text()
        tokens = {}
        for name, scope, token in re.findall(r"^\| `([\w-]+)` \| (\w+) \| `(rampart_[0-9a-f]+)` \|",
                                             readme, re.M):
            tokens[name] = (scope, token)
        # Who answers applications' checks: the replicas, or the nodes.
        replicas = [p for p in self.pods if not p.sidecar and setting(p.rampart[0], "--follow")]
        for name, pods in (("operator", self.writers()), ("orders-svc", replicas or self.nodes())):
            if name not in tokens:
                raise SetupError(f"deploy/README.md publishes no example token `{name}`")
            scope, token = tokens[name]
            digest = hashlib.sha256(token.encode()).hexdigest()
            for pod in pods:
                path = setting(pod.rampart[0], "--tokens-file")
                if not path:
                    raise Failure(f"{pod.name} has no --tokens-file: authentication is off")
                spec = tomllib.loads(Path(path).read_text())
                scopes = next((set(t.get("scopes", [])) for t in spec.get("token", [])
                               if t.get("sha256") == digest), None)
                if scopes is None or scope not in scopes:
                    raise Failure(f"deploy/README.md's example `{name}` token: its hash is not in "
                                  f"{pod.name}'s tokens file with scope `{scope}`")
        self.tokens = {name: token for name, (_, token) in tokens.items()}
        return tokens["operator"][1], tokens["orders-svc"][1]

    def listen(self, pod):
        return listen_addr(pod, pod.rampart[0])

    def nodes(self):
        """The pods whose rampart is on PostgreSQL (a store URL)."""
        return [p for p in self.pods if setting(p.rampart[0], "--store")]

    def writers(self):
        """The pods that take Admin calls: the leader, or every node on
        PostgreSQL."""
        return [p for p in self.pods if not setting(p.rampart[0], "--follow")]

    def admin_service(self):
        """The Service for Admin calls: Service rampart-leader (the base's
        leader) or, with --postgres, Service rampart (any node)."""
        return "rampart" if self.postgres else "rampart-leader"

    def leader(self):
        """The address of the Service for Admin calls (its first port), and
        the pod it selects."""
        name = self.admin_service()
        svc = self.services.get(name)
        if svc is None:
            raise SetupError(f"no Service {name} in the rendered manifests")
        port = svc["spec"]["ports"][0]["port"]
        addr, tport, pod = self.rw.service_target(name, port)
        if pod not in self.writers():
            raise Failure(f"Service {name} selects {pod.name}, which takes no Admin calls")
        return f"{addr}:{tport}", pod

    def checkers(self, orders_token):
        """(pod, env for ctl) for every replica and every node on
        PostgreSQL: the base replicas and the nodes with the orders-svc
        token, a sidecar as its app (the app container's RAMPART_SERVER and
        RAMPART_TOKEN)."""
        out = []
        for pod in self.pods:
            c = pod.rampart[0]
            if not setting(c, "--follow") and not setting(c, "--store"):
                continue
            if pod.sidecar:
                apps = [o for o in pod.others
                        if any(e["name"] == "RAMPART_SERVER" for e in o.get("env") or [])]
                if not apps:
                    raise SetupError(f"{pod.workload}: no app container with RAMPART_SERVER to check as")
                app = apps[0]
                raw = resolve_env(pod, app, self.objects, {})
                env = {k: self.rw.rewrite(pod, f"app env {k}", raw[k], {})
                       for k in ("RAMPART_SERVER", "RAMPART_TOKEN") if k in raw}
                if "RAMPART_TOKEN" not in env:
                    raise SetupError(f"{pod.workload}: container {app['name']} has no RAMPART_TOKEN")
                if env["RAMPART_TOKEN"] != env["RAMPART_TOKEN"].strip():
                    raise Failure(f"{pod.name} container {app['name']}: RAMPART_TOKEN has whitespace around it "
                                  "(a newline in the token file?): a client that sends it as is puts it "
                                  "in the authorization header")
                out.append((pod, env, f"as container {app['name']} (its RAMPART_SERVER, RAMPART_TOKEN)"))
            else:
                out.append((pod, {"RAMPART_SERVER": listen_addr(pod, c), "RAMPART_TOKEN": orders_token},
                            "with the orders-svc token"))
        return out

    def assertions(self):
        operator, orders = self.example_tokens()
        leader, leader_pod = self.leader()
        service = self.admin_service()
        op_env = {"RAMPART_SERVER": leader, "RAMPART_TOKEN": operator}
        # The second change goes to the same leader, or (PostgreSQL: any
        # node takes writes) straight to another node than the Service's.
        others = [p for p in self.writers() if p is not leader_pod]
        second = (f"{others[0].name} directly", self.listen(others[0])) if self.postgres else \
            (f"Service {service}", leader)

        # (i) an Admin change through the leader (the Service), then one
        # through another node with --postgres.
        before = self.ctl(op_env, *CHECK_NEW_USER)
        if before.returncode != 0 or json.loads(before.stdout).get("decision") != "deny":
            raise Failure(f"before the change, {leader_pod.name} should deny {NEW_USER} {NEW_PERMISSION}: "
                          f"{before.stdout}{before.stderr}")
        revision = None
        for args, (how, server) in ((("user", "add", "--tenant", "acme", "--user", NEW_USER),
                                     (f"Service {service}", leader)),
                                    (("binding", "assign", "--tenant", "acme", "--subject", NEW_USER,
                                      "--role", NEW_ROLE), second)):
            r = self.ctl({**op_env, "RAMPART_SERVER": server}, *args)
            if r.returncode != 0:
                raise Failure(f"`rampart ctl {' '.join(args)}` through {how} ({server}) "
                              f"with the operator token failed (exit {r.returncode}): {r.stderr.strip()}")
            revision = json.loads(r.stdout)["revision"]
        self.passed_(f"(i) Admin, operator token: user add {NEW_USER} through Service {service} -> "
                     f"{leader_pod.name} ({leader}), binding assign {NEW_USER} -> {NEW_ROLE} through "
                     f"{second[0]} ({second[1]}), in acme: revision {revision}")

        # (ii) every replica allows it at that revision.
        for pod, env, how in self.checkers(orders):
            deadline = time.monotonic() + CHECK_BUDGET_S
            tries = 0
            while True:
                tries += 1
                r = self.ctl(env, *CHECK_NEW_USER, "--at-least-revision", str(revision))
                ok = r.returncode == 0 and json.loads(r.stdout).get("decision") == "allow"
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if not ok:
                raise Failure(f"(ii) {pod.name} ({how}) did not allow {NEW_USER} {NEW_PERMISSION} at "
                              f"revision >= {revision} within {CHECK_BUDGET_S:.0f}s: exit {r.returncode} "
                              f"{r.stdout.strip()} {r.stderr.strip()}")
            answer = json.loads(r.stdout)
            self.passed_(f"(ii) {pod.name} ({env['RAMPART_SERVER']}, {how}): allow at revision "
                         f"{answer.get('revision')} (asked >= {revision}, {tries} call(s))")
        # And the way applications reach the replicas (the nodes): Service rampart.
        svc = self.services.get("rampart")
        if svc is None:
            raise SetupError("no Service rampart in the rendered manifests")
        addr, port, target = self.rw.service_target("rampart", svc["spec"]["ports"][0]["port"])
        if not setting(target.rampart[0], "--follow") and target not in self.nodes():
            raise Failure(f"Service rampart selects {target.name}, which is neither a replica nor a node "
                          "on PostgreSQL")
        r = self.ctl({"RAMPART_SERVER": f"{addr}:{port}", "RAMPART_TOKEN": orders}, *CHECK_NEW_USER,
                     "--at-least-revision", str(revision))
        if r.returncode != 0 or json.loads(r.stdout).get("decision") != "allow":
            raise Failure(f"(ii) through Service rampart ({addr}:{port}): exit {r.returncode} "
                          f"{r.stdout.strip()} {r.stderr.strip()}")
        self.passed_(f"(ii) through Service rampart -> {target.name} ({addr}:{port}, targetPort "
                     f"{svc['spec']['ports'][0].get('targetPort')}): allow")

        # (iii) no token: UNAUTHENTICATED everywhere.
        for pod in self.pods:
            server = listen_addr(pod, pod.rampart[0])
            calls = [("check", "--tenant", "acme", "--subject", "alice", "--permission", "documents:view")]
            if pod in self.writers():
                calls.append(("user", "add", "--tenant", "acme", "--user", "mallory"))
            for call in calls:
                r = self.ctl({"RAMPART_SERVER": server}, *call)
                if r.returncode == 0 or "UNAUTHENTICATED" not in r.stderr:
                    raise Failure(f"(iii) {pod.name} ({server}): `ctl {call[0]}` without a token should be "
                                  f"refused UNAUTHENTICATED; got exit {r.returncode}: {r.stdout}{r.stderr}")
            self.passed_(f"(iii) {pod.name}: {' and '.join('`' + c[0] + '`' for c in calls)} without a "
                         "token refused UNAUTHENTICATED")
            if pod.sidecar:
                r = self.ctl({"RAMPART_SERVER": server, "RAMPART_TOKEN": orders}, *calls[0])
                if r.returncode == 0 or "UNAUTHENTICATED" not in r.stderr:
                    raise Failure(f"(iii) {pod.name}: the orders-svc token should be refused (the sidecar "
                                  f"accepts the app's token only); got exit {r.returncode}: "
                                  f"{r.stdout}{r.stderr}")
                self.passed_(f"(iii) {pod.name}: the orders-svc token refused UNAUTHENTICATED "
                             "(only the app's token is accepted)")

        # (iv) metrics.
        for pod in self.pods:
            for c in pod.rampart:
                addr = setting(c, "--metrics-listen")
                if not addr:
                    log(f"  {pod.name}/{c.name}: no --metrics-listen in the manifest, no metrics to check")
                    continue
                url = f"http://{addr}/metrics"
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        text = resp.read().decode()
                except OSError as e:
                    raise Failure(f"(iv) {pod.name}: {url} did not answer: {e}") from e
                m = re.search(r"^rampart_snapshot_revision(?:\{[^}]*\})? (\S+)$", text, re.M)
                if not m or float(m.group(1)) < revision:
                    raise Failure(f"(iv) {pod.name}: {url}: rampart_snapshot_revision "
                                  f"{m.group(1) if m else 'missing'}, want >= {revision}")
                extra = ""
                if setting(c, "--follow"):
                    lag = re.search(r"^rampart_replica_lag_revisions(?:\{[^}]*\})? (\S+)$", text, re.M)
                    if not lag:
                        raise Failure(f"(iv) {pod.name}: {url} has no rampart_replica_lag_revisions")
                    extra = f", rampart_replica_lag_revisions {lag.group(1)}"
                self.passed_(f"(iv) {pod.name}: {url}: rampart_snapshot_revision {m.group(1)}{extra}")

        # With --postgres: the database goes away and comes back.
        if self.postgres:
            smoke_postgres.outage(self, revision, CHECK_NEW_USER)

    def terminate(self):
        """(v) SIGTERM to every process at once; each must exit 0 within its
        pod's terminationGracePeriodSeconds."""
        sent = time.monotonic()
        for pod in self.pods:
            for c in pod.rampart:
                c.proc.send_signal(signal.SIGTERM)
        log("SIGTERM sent to every rampart process (preStop sleep skipped)")
        running = {(pod.name, c.name): (pod, c) for pod in self.pods for c in pod.rampart}
        failures = []
        while running:
            for key, (pod, c) in list(running.items()):
                grace = pod.spec.get("terminationGracePeriodSeconds", 30)
                took = time.monotonic() - sent
                rc = c.proc.poll()
                if rc is None:
                    if took > grace:
                        failures.append(f"{pod.name}/{c.name} still running {grace}s after SIGTERM "
                                        "(terminationGracePeriodSeconds): the kubelet would SIGKILL it")
                        del running[key]
                    continue
                del running[key]
                if rc != 0:
                    failures.append(f"{pod.name}/{c.name} exited {rc} after SIGTERM (its log is below)")
                else:
                    self.passed_(f"(v) {pod.name}/{c.name}: exit 0 {took:.2f}s after SIGTERM "
                                 f"(grace {grace}s)")
            time.sleep(0.02)
        if failures:
            raise Failure("(v) " + "\n".join(failures))

    def traces(self):
        if not self.sink:
            return
        self.sink.send_signal(signal.SIGTERM)
        try:
            self.sink.wait(timeout=10)
        except subprocess.TimeoutExpired as e:
            raise Failure("the OTLP sink did not exit on SIGTERM") from e
        counts = None
        for line in self.sink_out.read_text().splitlines():
            if line.startswith("{"):
                counts = json.loads(line)
        if counts is None:
            raise Failure(f"the OTLP sink printed no counts:\n{self.tail(self.sink_out)}")
        leader = self.leader()[1].name  # the pod Service rampart-leader (--postgres: rampart) selects
        if not counts.get(leader):
            raise Failure(f"the OTLP sink received no spans from {leader}: {counts}")
        self.passed_(f"traces: the OTLP sink received spans by pod: "
                     f"{', '.join(f'{k} {v}' for k, v in counts.items())}")

    def run(self):
        self.setup()
        self.check_ports_free()
        self.start()
        self.wait_ready()
        self.assertions()
        self.terminate()
        if self.postgres:
            smoke_postgres.nothing_written(self)
        self.traces()

    def report_failure(self):
        for pod in self.pods if hasattr(self, "pods") else []:
            for c in pod.rampart:
                if c.log_path:
                    print(f"--- {pod.name}/{c.name} log (last lines):\n{self.tail(c.log_path, 8)}",
                          file=sys.stderr)

    def cleanup(self):
        self.kill_all()
        if self.database is not None:
            self.database.cleanup()
        if self.keep:
            log(f"kept {self.tmp} (logs and volumes)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, volumes)")
    parser.add_argument("--postgres", action="store_true",
                        help="run deploy/postgres and deploy/postgres/sidecar on a throwaway PostgreSQL")
    a = parser.parse_args()
    bin_path = os.environ.get("RAMPART_BIN")
    if not bin_path:
        print("deploy/smoke.py: set RAMPART_BIN to the rampart binary (e.g. target/release/rampart)",
              file=sys.stderr)
        return 2
    bin_path = str(Path(bin_path).resolve())
    if not os.access(bin_path, os.X_OK):
        print(f"deploy/smoke.py: RAMPART_BIN {bin_path} is not an executable", file=sys.stderr)
        return 2
    sink_bin = os.environ.get("OTLP_SINK_BIN") or None
    if sink_bin:
        sink_bin = str(Path(sink_bin).resolve())
    # SIGTERM/SIGINT: unwind through the finally below, which kills the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    smoke = Smoke(bin_path, sink_bin, a.keep, a.postgres)
    code = 0
    try:
        log(f"RAMPART_BIN={bin_path}{f', OTLP_SINK_BIN={sink_bin}' if sink_bin else ''}; folder {smoke.tmp}")
        smoke.run()
    except SetupError as e:
        print(f"\ndeploy/smoke.py: SETUP ERROR: {e}", file=sys.stderr)
        code = 2
    except Failure as e:
        print(f"\ndeploy/smoke.py: FAIL: {e}", file=sys.stderr)
        smoke.report_failure()
        code = 1
    except KeyboardInterrupt:
        print("\ndeploy/smoke.py: interrupted", file=sys.stderr)
        code = 130
    except SystemExit as e:
        print("\ndeploy/smoke.py: terminated", file=sys.stderr)
        code = e.code if isinstance(e.code, int) else 1
    except Exception:  # a bug here, or an answer it cannot read: still clean up
        traceback.print_exc()
        smoke.report_failure()
        code = 1
    finally:
        smoke.cleanup()
    took = time.monotonic() - T0
    if code == 0:
        print(f"\nsmoke: PASS, {len(smoke.passed)} checks in {took:.1f}s")
        for p in smoke.pods:
            ready = f"ready after {p.ready_after:.1f}s" if p.ready_after is not None else "no probe"
            sidecar = " (native sidecar)" if p.sidecar else ""
            restarts = sum(c.restarts for c in p.rampart)
            restarted = f", restarted {restarts} time(s)" if restarts else ""
            print(f"  {p.name:18} {p.addr:10} {p.workload}{sidecar}: {ready}{restarted}")
    else:
        print(f"\nsmoke: FAILED after {took:.1f}s ({len(smoke.passed)} checks passed before)",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
