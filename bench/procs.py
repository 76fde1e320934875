"""The processes the benchmark starts: each in its own process group, logging to a file, stopped for sure.

Every process is started with `start_new_session` (its pid is its group id) and asks the kernel for SIGTERM
if the bench dies (PR_SET_PDEATHSIG), so nothing outlives a crashed or interrupted run; `Stack.stop()` sends
SIGTERM to each group, then SIGKILL after a bounded wait. CPU time is read from /proc, per process group
(a gunicorn master and its workers) or per pid (PostgreSQL backends), so each phase can say what it cost.
"""

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A process did not come up in time; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
    total = 0.0
    for pid in group_pids(pgid):
        total += pid_cpu(pid, children=pid == pgid)
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class Proc:
    """A process we started, in its own group (its pid is the group id), logging to one file."""

    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path, port: int | None = None):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.port = port

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        return group_cpu(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def wait_for_log(self, pattern: str, timeout: float) -> None:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            if regex.search(text):
                return
            if not self.alive():
                raise StartError(f"{self.name} exited ({self.popen.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise StartError(f"{self.name}: no {pattern!r} in its log within {timeout:g}s:\n{self.log_tail()}")

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole group, SIGKILL after `timeout` seconds, then reap."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5)
        self.signal_group(signal.SIGKILL)  # anything the leader left behind


def spawn(
    name: str, command: list[str], env: dict, log_path: Path, cwd: Path, port: int | None = None
) -> Proc:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(  # noqa: S603  (the bench's own fixed commands)
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Proc(name, popen, log_path, port)


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Poll `check` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:g}s (last: {last!r})")


def http_ok(port: int, path: str = "/", timeout: float = 2.0) -> bool:
    """One blocking GET on 127.0.0.1: True on any 2xx/3xx answer."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and head[9:10] in (b"2", b"3")


class Stack:
    """The processes of one run, stopped in reverse order of start, whatever happens."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def remove(self, proc: Proc, timeout: float = 10.0) -> None:
        proc.stop(timeout)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            with contextlib.suppress(Exception):
                proc.stop()
