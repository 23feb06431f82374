"""The database of `deploy/smoke.py --postgres`: a throwaway PostgreSQL
cluster standing in for the one deploy/postgres expects, the rewrite of the
store URL to it, and the outage check. deploy/smoke.py says what it does
and why.

The cluster is made with the system's initdb and pg_ctl (Debian's
`postgresql` package: on PATH, else the newest /usr/lib/postgresql/*/bin),
as the `postgres` user through `runuser` when running as root (initdb
refuses root), in a temporary folder of its own, listening on 127.0.0.1 on
a free port with its unix socket in that folder, with trust authentication
and no fsync (it is thrown away). The role and the database are those the
manifests' URL names, so only the URL's hosts are rewritten. It is stopped
with `pg_ctl -D <its folder> stop`, never by name."""

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from smoke_pods import Failure, SetupError, log, resolve_env

OUTAGE_RESUME_S = 30.0

PG_URL = re.compile(r"^(postgres(?:ql)?://)(?:([^@/?#]*)@)?([^/?#]*)(.*)$")


def programs():
    """(initdb, pg_ctl, createdb): on PATH, else the newest Debian folder."""
    folders = [Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    debian = sorted((int(p.name), p / "bin") for p in Path("/usr/lib/postgresql").glob("*")
                    if p.name.isdigit()) if Path("/usr/lib/postgresql").is_dir() else []
    for folder in folders + [b for _, b in reversed(debian)]:
        found = [folder / n for n in ("initdb", "pg_ctl", "createdb")]
        if all(f.is_file() for f in found):
            return found
    raise SetupError("PostgreSQL is not installed (no initdb, pg_ctl, createdb on PATH or in "
                     "/usr/lib/postgresql/*/bin): apt-get install postgresql")


def parse(url):
    """(role, database) of a postgres:// URL."""
    parts = urllib.parse.urlsplit(url)
    role = urllib.parse.unquote(parts.username or "")
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not role or not database:
        raise SetupError(f"the store URL names no role or no database: the smoke test makes both "
                         f"(`{PG_URL.sub(lambda m: m.group(1) + '…@' + m.group(3) + m.group(4), url)}`)")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", role) or not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
        raise SetupError(f"role `{role}` or database `{database}`: the smoke test makes only plain names")
    return role, database


class Database:
    def __init__(self, role, database):
        self.role, self.database = role, database
        self.initdb, self.pg_ctl, self.createdb = programs()
        self.root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="rampart-smoke-pg-"))
        if self.root:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as e:
                raise SetupError("running as root, and there is no `postgres` user to run initdb") from e
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.port = None
        self.options = None

    def _run(self, program, *args, what):
        argv = (["runuser", "-u", "postgres", "--"] if self.root else []) + [str(program), *args]
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=120, check=False)
        if out.returncode != 0:
            log_text = (self.dir / "log").read_text(errors="replace") if (self.dir / "log").exists() else ""
            raise SetupError(f"{what} failed (exit {out.returncode}): {out.stdout}{out.stderr}{log_text[-2000:]}")
        return out

    def start(self):
        self._run(self.initdb, "-D", str(self.data), "-U", self.role, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions", what="initdb")
        sock = self.dir / "sock"
        self._run("mkdir", str(sock), what="mkdir")
        for _ in range(5):  # a port taken between the probe and the server's bind: another
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -F"
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                          "-o", options, "start", what="pg_ctl start")
            except SetupError as e:
                last = e
                continue
            self.port, self.options = port, options
            break
        else:
            raise last
        self._run(self.createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.role, self.database,
                  what="createdb")
        log(f"PostgreSQL {self.initdb.parent.parent.name} (throwaway, {self.dir}) on 127.0.0.1:{self.port}: "
            f"role {self.role}, database {self.database}, trust authentication")

    def stop(self):
        """An outage: a fast shutdown, the folder kept."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop", what="pg_ctl stop")

    def restart(self):
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", self.options, "start", what="pg_ctl start")

    def cleanup(self):
        """Stops exactly this cluster (if it runs) and removes its folder."""
        if (self.data / "postmaster.pid").exists():
            argv = (["runuser", "-u", "postgres", "--"] if self.root else []) + \
                   [str(self.pg_ctl), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def rewrite(self, url):
        """The URL with its hosts replaced by this cluster's address; role,
        password, database and parameters kept."""
        m = PG_URL.match(url)
        if not m:
            raise SetupError(f"cannot read the store URL `{url.split('@')[-1]}`")
        scheme, userinfo, _hosts, rest = m.groups()
        return f"{scheme}{userinfo + '@' if userinfo is not None else ''}127.0.0.1:{self.port}{rest}"


def store_url(pods, objects, image_env):
    """The one store URL of the rendered nodes (RAMPART_STORE, or --store),
    before any rewrite; None when no pod has one."""
    urls = set()
    for pod in pods:
        for c in pod.rampart:
            url = resolve_env(pod, c.spec, objects, image_env).get("RAMPART_STORE")
            for a in c.spec.get("args") or []:
                if a.startswith("--store="):
                    url = a.partition("=")[2]
            if url:
                urls.add(url)
    if len(urls) > 1:
        raise SetupError(f"{len(urls)} different store URLs: the smoke test makes one database")
    return next(iter(urls), None)


def outage(smoke, revision, check_args):
    """(outage) The database stops: every node stays SERVING (the probes'
    service ``) and answers checks from its snapshot, and a write is refused
    UNAVAILABLE naming the store. The database returns: a write goes through
    again, and every node answers at its revision."""
    nodes = smoke.nodes()
    orders, operator = smoke.tokens["orders-svc"], smoke.tokens["operator"]
    smoke.database.stop()
    log("PostgreSQL stopped (pg_ctl stop -m fast): the outage begins")
    for pod in nodes:
        server = smoke.listen(pod)
        status = smoke.health(pod.addr, int(server.rpartition(":")[2]), "", timeout=2)
        if status != "SERVING":
            raise Failure(f"(outage) {pod.name}: health is {status} while the database is down: the probes "
                          "would take the node out of the Service, then restart it")
        r = smoke.ctl({"RAMPART_SERVER": server, "RAMPART_TOKEN": orders}, *check_args,
                      "--at-least-revision", str(revision))
        if r.returncode != 0 or json.loads(r.stdout).get("decision") != "allow":
            raise Failure(f"(outage) {pod.name}: a check while the database is down: exit {r.returncode} "
                          f"{r.stdout.strip()} {r.stderr.strip()}")
    smoke.passed_(f"(outage) database down: {', '.join(p.name for p in nodes)} stay SERVING and allow "
                  f"the check at revision {revision} (their last snapshot)")
    writer = nodes[-1]
    env = {"RAMPART_SERVER": smoke.listen(writer), "RAMPART_TOKEN": operator}
    add = ("user", "add", "--tenant", "acme", "--user", "smoke-outage")
    r = smoke.ctl(env, *add)
    if r.returncode == 0 or "UNAVAILABLE" not in r.stderr or "PostgreSQL store" not in r.stderr:
        raise Failure(f"(outage) {writer.name}: a write while the database is down should fail UNAVAILABLE "
                      f"naming the store; got exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
    smoke.passed_(f"(outage) database down: a write through {writer.name} is refused: "
                  f"{r.stderr.strip().splitlines()[-1][:200]}")
    smoke.database.restart()
    back = time.monotonic()
    log("PostgreSQL started again")
    while True:
        r = smoke.ctl(env, *add)
        if r.returncode == 0:
            break
        if time.monotonic() - back > OUTAGE_RESUME_S:
            raise Failure(f"(outage) {writer.name}: writes did not resume within {OUTAGE_RESUME_S:.0f}s of "
                          f"the database's return: {r.stderr.strip()}")
        time.sleep(0.25)
    took = time.monotonic() - back
    new = json.loads(r.stdout)["revision"]
    for pod in nodes:
        r = smoke.ctl({"RAMPART_SERVER": smoke.listen(pod), "RAMPART_TOKEN": orders}, *check_args,
                      "--at-least-revision", str(new))
        if r.returncode != 0:
            raise Failure(f"(outage) {pod.name}: no answer at revision {new} after the database's return: "
                          f"{r.stderr.strip()}")
    smoke.passed_(f"(outage) database back: a write through {writer.name} went through {took:.1f}s after "
                  f"its return (revision {new}), and every node answers at that revision")


def nothing_written(smoke):
    """After the run: a node on PostgreSQL wrote no file in its working
    directory (the image's WORKDIR, /data, which no volume backs here:
    read-only in the cluster)."""
    for pod in smoke.nodes():
        c = pod.rampart[0]
        written = sorted(str(p.relative_to(c.cwd)) for p in Path(c.cwd).rglob("*"))
        if written:
            raise Failure(f"{pod.name}: wrote {', '.join(written[:5])} in its working directory; a node "
                          "on PostgreSQL keeps no local state (its root filesystem is read-only)")
    smoke.passed_(f"{', '.join(p.name for p in smoke.nodes())}: no file written in the working directory "
                  "(no local state)")
