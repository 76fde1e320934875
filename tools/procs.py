"""The real processes that the live tests, the benchmark and the drills start, and how they are stopped for sure.

Every process runs in its own process group (its pid is the group id), logs to one file, and gets SIGTERM from
the kernel if the process that started it dies (util-linux's `setpriv --pdeathsig`, else PR_SET_PDEATHSIG),
so nothing outlives a crashed or interrupted run. `Proc.stop()` sends SIGTERM, then SIGKILL to the whole group
after a bounded wait. CPU time is read from /proc, per process group (a gunicorn master and its workers) or per
pid (PostgreSQL backends), so a benchmark phase can say what it cost.
"""

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT = 20.0  # seconds for a process to come up
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
_SETPRIV = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []


class StartError(RuntimeError):
    """A process did not come up in time; the message carries the tail of its log."""


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy, at most `timeout` seconds; return that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    for _ in range(int(timeout / interval) + 2):
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:g}s (last value {last!r})")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_ok(port: int, path: str = "/", timeout: float = 2.0) -> bool:
    """One blocking GET on 127.0.0.1: True on any 2xx/3xx answer."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and head[9:10] in (b"2", b"3")


# -- CPU accounting -----------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; the fields after it are plain.
    return raw[raw.rfind(")") + 2 :].split()


def pid_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of one process, plus its reaped children's when asked."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                found.append(int(entry))
    return found


def group_cpu(pgid: int) -> float:
    """CPU seconds of a process group: live members, plus what the leader collected from exited children
    (gunicorn recycles its workers after max_requests; their time lands in the master's cutime)."""
    return sum(pid_cpu(pid, children=pid == pgid) for pid in group_pids(pgid))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


# -- processes ------------------------------------------------------------------------------------------------


class Proc:
    """A process we started, in its own process group (its pid is the group id), logging to one file."""

    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path, port: int | None = None):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.port = port
        self.url = f"http://{HOST}:{port}" if port else ""

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid} port={self.port} {'alive' if self.alive() else 'exited'}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        """CPU seconds of the whole group so far."""
        return group_cpu(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT, group: bool = False) -> int | None:
        """SIGTERM (to the leader, or to the whole group), SIGKILL to the group after `timeout`; the exit code."""
        self.terminate(group)
        return self.wait_or_kill(timeout)

    def terminate(self, group: bool = False) -> None:
        """Ask the process (or every process of its group) to stop, without waiting."""
        if not self.alive():
            return
        if group:
            self.signal_group(signal.SIGTERM)
        else:
            self.popen.send_signal(signal.SIGTERM)

    def wait_or_kill(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Wait for the process to exit, SIGKILL its group if it has not after `timeout`; its exit code."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_TIMEOUT)
        self.signal_group(
            signal.SIGKILL
        )  # a child the leader left behind (an rq scheduler, a gunicorn worker)
        return self.popen.returncode

    def kill9(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGKILL the process and every process of its group at once: no handler runs, nothing is cleaned."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=timeout)

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def children(self) -> list[int]:
        """Direct children's pids (gunicorn's workers, rq's scheduler), from /proc."""
        try:
            found = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in found]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def wait_for_log(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match:
        """Wait until the log has a line matching `pattern` (fails early if the process exits)."""
        regex = re.compile(pattern)

        def seen():
            match = regex.search(self.log_text())
            if match is None and not self.alive():
                raise StartError(f"{self.name} exited ({self.popen.returncode}); log:\n{self.log_tail()}")
            return match

        try:
            return wait_for(seen, timeout, f"{self.name}: log line {pattern!r}", interval=0.05)
        except TimeoutError as error:
            raise StartError(f"{error}; log:\n{self.log_tail()}") from None


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    name: str, command: list[str], env: dict, log_path: Path, cwd: Path, port: int | None = None, cls=Proc
) -> Proc:
    """Start `command` in a process group of its own, stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(  # noqa: S603  (the harness's own fixed commands)
            [*_SETPRIV, *command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # setpriv asks for the parent-death signal after exec; without it, do it in the child (no threads yet).
            preexec_fn=None if _SETPRIV else _die_with_parent,
        )
    return cls(name, popen, log_path, port)


def stop_all(procs: Iterable[Proc | None], timeout: float = STOP_TIMEOUT, group: bool = False) -> None:
    """SIGTERM every process at once, then wait for each (SIGKILL to its group after the shared deadline)."""
    live = [proc for proc in procs if proc is not None]
    for proc in live:
        proc.terminate(group)
    deadline = time.monotonic() + timeout
    for proc in live:
        proc.wait_or_kill(timeout=max(0.1, deadline - time.monotonic()))


class Stack:
    """The processes of one run, stopped in reverse order of start, whatever happens."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def remove(self, proc: Proc, timeout: float = STOP_TIMEOUT) -> None:
        proc.stop(timeout, group=True)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            with contextlib.suppress(Exception):
                proc.stop(group=True)
