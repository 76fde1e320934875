"""The shop scaled out on 127.0.0.1, from existing engines only: `python -m tools.cluster up` (make cluster).

etcd, PostgreSQL as a Patroni leader and a streaming replica (data directories and ports of their own), a
Redis of its own, the loopback Authorize.Net, two gunicorn web nodes, two `rq worker`s, the clock and nginx
in front (the site from deploy/nginx). The app writes through a multi-host DSN with
target_session_attrs=read-write, so it always finds the leader, and reads the catalog through
target_session_attrs=prefer-standby. Every process is in its own process group, started by pid and stopped
by pid (tools/procs.py). `python -m tools.cluster env` prints the environment of a running cluster.
"""

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bench.sut import BIN, RAISED_LIMIT, RAISED_LIMITS, base_env, run_tool, start_loopback
from tools import deploy_render
from tools.procs import HOST, Proc, Stack, free_port, http_ok, spawn, wait_for
from tools.sqldb import SqlDb

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "test-output" / "cluster"
PG_BIN = Path(os.environ.get("CLUSTER_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER_PASSWORD = "cluster-only"  # noqa: S105 - loopback only (trust on 127.0.0.1), never a real secret
DATABASE = "storefront"
START_TIMEOUT = 90.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PATRONI = """scope: storefront
namespace: /storefront/
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{rest_port}
  connect_address: 127.0.0.1:{rest_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    # A dead leader's key lapses after ttl seconds; the replica then promotes itself.
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 8
        max_replication_slots: 8
        wal_keep_size: 256MB
        max_connections: 200
  initdb:
    - encoding: UTF8
    - data-checksums
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data_dir}
  bin_dir: {pg_bin}
  pgpass: {socket_dir}/pgpass-{name}
  authentication:
    replication:
      username: replicator
      password: replicator-cluster-only
    superuser:
      username: postgres
      password: {password}
    rewind:
      username: rewinder
      password: rewinder-cluster-only
  parameters:
    unix_socket_directories: {socket_dir}
    # Each node archives its own WAL (pgBackRest must be told which data directory is this node's).
    archive_mode: "on"
    archive_command: "{archive_command}"
    shared_buffers: 64MB
tags:
  nofailover: false
"""

PGBACKREST = """[storefront]
pg1-path={data_dir_1}
pg1-port={pg_port_1}
pg1-socket-path={socket_dir}
pg2-path={data_dir_2}
pg2-port={pg_port_2}
pg2-socket-path={socket_dir}

[global]
repo1-path={repo}
repo1-retention-full=2
log-path={root}/pgbackrest-log
lock-path={root}/pgbackrest-lock
spool-path={root}/pgbackrest-spool
start-fast=y
archive-check=n
backup-standby=n
"""


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: start it (and Patroni) as the postgres user when we are root."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


def chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def rest(port: int, path: str, method: str = "GET", timeout: float = 2.0) -> tuple[int, dict]:
    """One call to a Patroni REST API; (0, {}) when it does not answer."""
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}
    except (OSError, ValueError):
        return 0, {}


class PgNode:
    """One Patroni-managed PostgreSQL: its ports, data directory and the Patroni process."""

    def __init__(self, name: str, root: Path):
        self.name = name
        self.pg_port = free_port()
        self.rest_port = free_port()
        self.data_dir = root / "pg" / name
        self.config = root / f"{name}.yml"
        self.proc: Proc | None = None

    def role(self) -> str | None:
        """ "master"/"primary", "replica", or None when Patroni does not answer."""
        status, body = rest(self.rest_port, "/patroni")
        return body.get("role") if status else None

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


RESTART_SECONDS = 2.0


@dataclass
class Supervised:
    """A process the cluster restarts whenever it exits, like a systemd unit with Restart=always."""

    name: str
    start: Callable[[], Proc]
    proc: Proc
    port: int | None = None
    died_at: float | None = None
    restarts: list[float] = field(default_factory=list)  # seconds from death to running again
    failures: list[str] = field(default_factory=list)


@dataclass
class Restored:
    """A PostgreSQL restored by pgBackRest into a scratch directory, running on a port of its own."""

    proc: Proc
    url: str
    seconds: float

    def stop(self) -> None:
        self.proc.stop(group=True)


def kill_postmaster(node: PgNode, pid: int | None) -> None:
    """SIGKILL a node's postmaster, only if that pid still is a postgres of this node's data directory."""
    if not pid:
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    if "postgres" in cmdline and str(node.data_dir) in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Cluster:
    """Everything `make cluster` runs, started in dependency order and stopped in reverse."""

    def __init__(self, root: Path, http_port: int = 8080, redis_port: int = 6400, web_nodes: int = 2):
        self.root = root
        self.http_port = http_port
        self.redis_port = redis_port
        self.web_count = web_nodes
        self.stack = Stack()
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.nodes = [PgNode("pg1", root), PgNode("pg2", root)]
        self.socket_dir = root / "sockets"
        self.pgbackrest_conf = root / "pgbackrest.conf"
        self.web: list[Supervised] = []
        self.workers: list[Supervised] = []
        self.clock: Supervised | None = None
        self.supervised: list[Supervised] = []
        self.stopping = threading.Event()
        self.supervisor = threading.Thread(target=self._supervisor_loop, name="supervisor", daemon=True)
        self.nginx: Proc | None = None
        self.redis: Proc | None = None
        self.loopback: Proc | None = None

    # -- settings --------------------------------------------------------------------------------

    def hosts(self) -> str:
        return "&".join(f"host={HOST}:{node.pg_port}" for node in self.nodes)

    def database_url(self, database: str = DATABASE, attrs: str = "read-write") -> str:
        return (
            f"postgresql+psycopg2://postgres:{SUPERUSER_PASSWORD}@/{database}?{self.hosts()}"
            f"&target_session_attrs={attrs}&connect_timeout=2"
        )

    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    def env(self) -> dict:
        """Every shop process's environment (what `make cluster-env` prints)."""
        env = base_env() | {
            "STOREFRONT_ENV": "production",
            "SECRET_KEY": "storefront-cluster-secret",
            "DATABASE_URL": self.database_url(),
            "DATABASE_REPLICA_URL": self.database_url(attrs="prefer-standby"),
            "REDIS_URL": self.redis_url(),
            "PAYMENT_GATEWAY": "authorizenet",
            "AUTHNET_API_LOGIN_ID": "storefront-test",
            "AUTHNET_TRANSACTION_KEY": "storefront-key",
            "AUTHNET_ENDPOINT": f"http://{HOST}:{self.loopback.port}/xml/v1/request.api"
            if self.loopback
            else "",
            "MAIL_OUTBOX": str(self.root / "outbox"),
            "MEDIA_FOLDER": str(self.root / "media"),
            "BACKUP_DIR": str(self.root / "backups"),
            "TRUSTED_PROXIES": "1",
            # http://127.0.0.1:8080 is plain HTTP: the session cookie must not be Secure-only.
            "SESSION_COOKIE_SECURE": "false",
        }
        return env | dict.fromkeys(RAISED_LIMITS, RAISED_LIMIT)

    def write_env(self) -> Path:
        path = self.root / "cluster.env"
        names = ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "SECRET_KEY", "STOREFRONT_ENV")
        names += ("PAYMENT_GATEWAY", "AUTHNET_API_LOGIN_ID", "AUTHNET_TRANSACTION_KEY", "AUTHNET_ENDPOINT")
        names += ("MEDIA_FOLDER", "MAIL_OUTBOX", "BACKUP_DIR")
        env = self.env()
        path.write_text("".join(f"export {name}='{env[name]}'\n" for name in names))
        return path

    # -- start -----------------------------------------------------------------------------------

    def start(self, seed_products: int = 200, flash_stock: int = 100) -> None:
        """Bring every part up and wait until each answers; raise (and stop all) if one does not."""
        try:
            self._prepare_dirs()
            self._start_etcd()
            self._start_patroni()
            self._start_redis()
            self._prepare_database(seed_products, flash_stock)
            self.loopback = start_loopback(self.stack, self.root, 0.0)
            for number in range(1, self.web_count + 1):
                port = free_port()
                self.web.append(
                    self._supervise(f"web-{number}", functools.partial(self._web_node, number, port), port)
                )
            for number in (1, 2):
                self.workers.append(
                    self._supervise(f"worker-{number}", functools.partial(self._worker, number))
                )
            self.clock = self._supervise("clock", self._clock)
            self._start_nginx()
            self.supervisor.start()
            self.write_env()
        except BaseException:
            self.stop()
            raise

    def _prepare_dirs(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.root.chmod(0o755)
        # Everything PostgreSQL, Patroni and pgBackRest write belongs to the postgres user.
        for name in (
            "sockets",
            "pg",
            "pgbackrest-repo",
            "pgbackrest-log",
            "pgbackrest-lock",
            "pgbackrest-spool",
        ):
            (self.root / name).mkdir()
            chown_postgres(self.root / name)
        self.pgbackrest_conf.write_text(
            PGBACKREST.format(
                data_dir_1=self.nodes[0].data_dir,
                pg_port_1=self.nodes[0].pg_port,
                data_dir_2=self.nodes[1].data_dir,
                pg_port_2=self.nodes[1].pg_port,
                socket_dir=self.socket_dir,
                repo=self.root / "pgbackrest-repo",
                root=self.root,
            )
        )
        self.pgbackrest_conf.chmod(0o644)

    def _start_etcd(self) -> None:
        data = self.root / "etcd"
        client, peer = f"http://{HOST}:{self.etcd_port}", f"http://{HOST}:{self.etcd_peer_port}"
        command = ["etcd", "--name", "storefront", "--data-dir", str(data)]
        command += ["--listen-client-urls", client, "--advertise-client-urls", client]
        command += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        command += ["--initial-cluster", f"storefront={peer}", "--initial-cluster-state", "new"]
        command += ["--initial-cluster-token", f"storefront-{os.getpid()}"]
        proc = self.stack.add(
            spawn("etcd", command, base_env(), self.root / "etcd.log", self.root, self.etcd_port)
        )
        wait_for(lambda: http_ok(self.etcd_port, "/health"), START_TIMEOUT, "etcd")
        if not proc.alive():
            raise RuntimeError(f"etcd exited: {proc.log_tail()}")

    def archive_command(self, node: PgNode) -> str:
        return f"pgbackrest --config={self.pgbackrest_conf} --stanza=storefront --pg1-path={node.data_dir} archive-push %p"

    def _start_patroni(self) -> None:
        for node in self.nodes:
            self._write_patroni_config(node)
        self.start_pg_node(self.nodes[0])
        wait_for(lambda: self.leader() is self.nodes[0], START_TIMEOUT, "the first Patroni leader")
        self.start_pg_node(self.nodes[1])
        wait_for(self.replica_streaming, START_TIMEOUT, "the replica streaming from the leader")
        # WAL archiving (archive_command above) needs pgBackRest's stanza: from now on every segment is kept.
        self.pgbackrest("stanza-create")

    def pgbackrest(self, *args: str, timeout: float = 300) -> str:
        """Run pgBackRest on the cluster's repository as the postgres user; its output."""
        command = as_postgres(
            ["pgbackrest", f"--config={self.pgbackrest_conf}", "--stanza=storefront", *args]
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
        if result.returncode != 0:
            raise RuntimeError(
                f"pgbackrest {' '.join(args)} failed: {result.stdout[-1500:]}{result.stderr[-1500:]}"
            )
        return result.stdout

    def _write_patroni_config(self, node: PgNode) -> None:
        node.config.write_text(
            PATRONI.format(
                name=node.name,
                rest_port=node.rest_port,
                etcd_port=self.etcd_port,
                pg_port=node.pg_port,
                data_dir=node.data_dir,
                pg_bin=PG_BIN,
                root=self.root,
                password=SUPERUSER_PASSWORD,
                socket_dir=self.socket_dir,
                archive_command=self.archive_command(node),
            )
        )
        node.config.chmod(0o644)

    def start_pg_node(self, node: PgNode) -> Proc:
        """Patroni for one node (again, after a drill killed it: it rejoins as a replica)."""
        log = self.root / f"{node.name}.log"
        node.proc = self.stack.add(
            spawn(
                f"patroni-{node.name}", as_postgres(["patroni", str(node.config)]), base_env(), log, self.root
            )
        )
        return node.proc

    def leader(self) -> PgNode | None:
        for node in self.nodes:
            if rest(node.rest_port, "/primary")[0] == 200:
                return node
        return None

    def replica(self) -> PgNode | None:
        leader = self.leader()
        return next((node for node in self.nodes if node is not leader), None)

    def replica_streaming(self) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        status, body = rest(leader.rest_port, "/patroni")
        return status == 200 and any(r.get("state") == "streaming" for r in body.get("replication", []))

    def restore_to_time(self, target: str) -> Restored:
        """Restore the repository to `target` (a timestamp) into a scratch data directory, start it there on
        another port once recovery has reached the target, and hand it back running."""
        started = time.monotonic()
        scratch = self.root / "pg" / "pitr"
        port = free_port()
        self.pgbackrest(
            "restore", f"--pg1-path={scratch}", "--type=time", f"--target={target}", "--target-action=promote"
        )
        command = [
            str(PG_BIN / "postgres"),
            "-D",
            str(scratch),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        command += ["-c", "archive_mode=off", "-c", f"unix_socket_directories={self.socket_dir}"]
        command += ["-c", "hba_file=" + str(scratch / "pg_hba.conf"), "-c", "hot_standby=on"]
        proc = self.stack.add(
            spawn("pitr", as_postgres(command), base_env(), self.root / "pitr.log", self.root, port)
        )
        url = f"postgresql+psycopg2://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{port}/{DATABASE}"
        engine_check = SqlDb(url, pool_size=1, max_overflow=0)

        def promoted():
            try:
                return engine_check.scalar("SELECT NOT pg_is_in_recovery()")
            except DBAPIError:
                self._dead(proc)
                return False

        try:
            wait_for(promoted, 180, "the restored PostgreSQL out of recovery", interval=0.5)
        finally:
            engine_check.dispose()
        return Restored(proc, url, round(time.monotonic() - started, 1))

    def _start_redis(self) -> None:
        command = ["redis-server", "--port", str(self.redis_port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.root)]
        command += ["--maxmemory-policy", "noeviction"]
        self.redis = self.stack.add(
            spawn("redis", command, base_env(), self.root / "redis.log", self.root, self.redis_port)
        )
        self.redis.wait_for_log(r"Ready to accept connections", START_TIMEOUT)

    def restart_redis(self) -> float:
        """Stop Redis (SIGTERM: it writes its append-only file) and start it again; seconds it was down."""
        started = time.monotonic()
        self.stack.remove(self.redis)
        self._start_redis()
        return time.monotonic() - started

    def _prepare_database(self, products: int, flash_stock: int) -> None:
        leader = self.leader()
        psql = [str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p", str(leader.pg_port), "-U", "postgres"]
        subprocess.run(  # noqa: S603 - fixed command
            as_postgres([*psql, "-Xqc", f'CREATE DATABASE "{DATABASE}"']),
            check=True,
            capture_output=True,
            timeout=60,
        )
        env = self.env()
        log = self.root / "setup.log"
        run_tool(env, [str(BIN / "alembic"), "upgrade", "head"], log, timeout=180)
        seed = [str(BIN / "flask"), "--app", "wsgi", "seed-demo", "--products", str(products)]
        run_tool(env, [*seed, "--flash-stock", str(flash_stock)], log, timeout=600)

    def _web_node(self, number: int, port: int) -> Proc:
        """A gunicorn master (sync workers) of its own on `port`, ready once the home page answers."""
        env = self.env() | {
            "BIND": f"{HOST}:{port}",
            "WEB_CONCURRENCY": os.environ.get("CLUSTER_WEB_WORKERS", "2"),
        }
        command = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
        proc = self.stack.add(
            spawn(f"web-{number}", command, env, self.root / f"web-{number}.log", ROOT, port)
        )
        wait_for(lambda: http_ok(port, "/") or self._dead(proc), START_TIMEOUT, f"web node on {port}", 0.2)
        return proc

    def _worker(self, number: int) -> Proc:
        command = [str(BIN / "rq"), "worker", "--url", self.redis_url(), "--worker-class"]
        command += ["rq.worker.SimpleWorker", "--with-scheduler", "payments", "default"]
        log = self.root / f"worker-{number}.log"
        proc = self.stack.add(spawn(f"worker-{number}", command, self.env(), log, ROOT))
        proc.wait_for_log(r"\*\*\* Listening on", START_TIMEOUT)
        return proc

    def _clock(self) -> Proc:
        command = [str(BIN / "rq"), "cron", "jobs.schedule", "--url", self.redis_url()]
        return self.stack.add(spawn("clock", command, self.env(), self.root / "clock.log", ROOT))

    def _supervise(self, name: str, start, port: int | None = None) -> Supervised:
        supervised = Supervised(name, start, start(), port)
        self.supervised.append(supervised)
        return supervised

    def _supervisor_loop(self) -> None:
        """systemd's Restart=always, RestartSec=2 for the web nodes, workers and the clock."""
        while not self.stopping.wait(0.5):
            for supervised in list(self.supervised):
                if supervised.proc.alive():
                    supervised.died_at = None
                    continue
                supervised.died_at = supervised.died_at or time.monotonic()
                if time.monotonic() - supervised.died_at < RESTART_SECONDS or self.stopping.is_set():
                    continue
                if supervised.proc in self.stack.procs:
                    self.stack.procs.remove(supervised.proc)
                try:
                    supervised.proc = supervised.start()
                    supervised.restarts.append(round(time.monotonic() - supervised.died_at, 1))
                    supervised.died_at = None
                except Exception as error:  # noqa: BLE001 - a failed start is retried, as systemd does
                    supervised.failures.append(str(error)[-300:])
                    supervised.died_at = time.monotonic()

    def _start_nginx(self) -> None:
        config = deploy_render.write_standalone(
            self.root / "nginx",
            {
                "nginx_http_port": self.http_port,
                "nginx_web_nodes": [f"{HOST}:{node.port}" for node in self.web],
                # The live stock pool (wsgi_stream.py) is not part of this branch: /stream/ goes to web nodes.
                "nginx_stream_nodes": [f"{HOST}:{node.port}" for node in self.web],
                "nginx_static_root": str(ROOT / "static"),
                "nginx_media_root": str(self.root / "media"),
                "nginx_access_log": str(self.root / "nginx" / "access.log"),
                "nginx_worker_processes": 1,
                "nginx_checkout_rate": "10000r/s",
                "nginx_checkout_burst": 10000,
            },
        )
        self.nginx = self.stack.add(
            spawn(
                "nginx", deploy_render.nginx_command(config), base_env(), self.root / "nginx.out", self.root
            )
        )
        wait_for(lambda: http_ok(self.http_port, "/") or self._dead(self.nginx), START_TIMEOUT, "nginx")

    @staticmethod
    def _dead(proc: Proc) -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        return False

    # -- failures the drills cause ---------------------------------------------------------------

    def kill(self, proc: Proc) -> None:
        """kill -9 a process group (a crash: no cleanup of any kind)."""
        proc.signal_group(signal.SIGKILL)
        proc.popen.wait(timeout=10)
        if proc in self.stack.procs:
            self.stack.procs.remove(proc)

    def kill_leader(self) -> PgNode:
        """kill -9 the leader's Patroni and its postmaster, as if the machine died."""
        leader = self.leader()
        postmaster = leader.postmaster_pid()
        self.kill(leader.proc)
        kill_postmaster(leader, postmaster)
        return leader

    def stop(self) -> None:
        self.stopping.set()
        if self.supervisor.is_alive():
            self.supervisor.join(timeout=START_TIMEOUT + 10)
        self.stack.stop()
        # Backends a killed postmaster left behind belong to no group we started: end them by their pids.
        for node in self.nodes:
            kill_postmaster(node, node.postmaster_pid())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=6400)
    args = parser.parse_args(argv)
    if args.command == "env":
        path = args.dir / "cluster.env"
        if not path.exists():
            parser.exit(1, f"no cluster running from {args.dir} (make cluster)\n")
        sys.stdout.write(path.read_text())
        return 0
    cluster = Cluster(args.dir, args.port, args.redis_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start()
        leader = cluster.leader()
        print(
            f"the shop is at http://{HOST}:{args.port}/ (leader {leader.name}); Ctrl-C stops it", flush=True
        )
        print(f"its environment: make cluster-env  (or: source {args.dir / 'cluster.env'})", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        (args.dir / "cluster.env").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
