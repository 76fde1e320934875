"""Slowloris (Debian's slowhttptest, 200 connections sending headers a byte at a time) against the production
front, the deploy/ nginx site in front of gunicorn, and against gunicorn alone: during the attack a probe asks
for the home page every 0.2 s with a 2 s limit. In front of nginx ≥ 99% must be answered in time."""

import shutil
import time

import pytest
import requests

from tests import services
from tools import deploy_render
from tools.procs import free_port, http_ok, spawn, wait_for

CONNECTIONS = 200
ATTACK_SECONDS = 40
PROBE_SECONDS = 25
PROBE_LIMIT = 2.0


def probe(url: str, seconds: float) -> tuple[int, int]:
    """(answered in time, asked) for GETs of `url` every 0.2 s for `seconds`, each on a new connection."""
    answered = asked = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        asked += 1
        started = time.monotonic()
        try:
            with requests.Session() as fresh:
                fresh.trust_env = False
                ok = fresh.get(url, timeout=PROBE_LIMIT).status_code == 200
            answered += ok and time.monotonic() - started <= PROBE_LIMIT
        except requests.RequestException:
            pass
        time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
    return answered, asked


def under_slowloris(url: str, logs) -> tuple[int, int]:
    """Run slowhttptest against `url` and probe it meanwhile; slowhttptest is stopped by its pid."""
    command = [
        shutil.which("slowhttptest") or "/usr/bin/slowhttptest", "-H", "-c", str(CONNECTIONS), "-r", "200",
        "-i", "10", "-x", "24", "-p", "3", "-l", str(ATTACK_SECONDS), "-u", url,
    ]  # fmt: skip
    attack = spawn("slowhttptest", command, {"PATH": "/usr/bin:/bin"}, logs / "slowhttptest.log", logs)
    try:
        time.sleep(5)  # every connection open and held before the probe starts
        return probe(url, PROBE_SECONDS)
    finally:
        attack.stop(timeout=5, group=True)


@pytest.fixture
def nginx_front(live_shop, tmp_path):
    """The deploy/ nginx site (rendered as Ansible would) on a free port, in front of the live gunicorn."""
    port = free_port()
    backend = live_shop.url.removeprefix("http://")
    config = deploy_render.write_standalone(
        tmp_path / "nginx",
        {"nginx_http_port": port, "nginx_web_nodes": [backend], "nginx_stream_nodes": [backend]},
    )
    proc = spawn(
        "nginx", deploy_render.nginx_command(config), {}, live_shop.logs / "nginx.log", tmp_path, port
    )
    try:
        wait_for(lambda: http_ok(port), 15, "nginx")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.stop(timeout=10, group=True)


def test_nginx_in_front_answers_through_a_slowloris(live_shop, nginx_front):
    if shutil.which("slowhttptest") is None:
        services.unavailable("slowhttptest", FileNotFoundError("make security-deps installs it"))
    alone, alone_asked = under_slowloris(f"{live_shop.url}/", live_shop.logs)
    time.sleep(3)
    fronted, asked = under_slowloris(nginx_front, live_shop.logs)
    print(
        f"\nslowloris, {CONNECTIONS} connections: gunicorn alone answered {alone}/{alone_asked} probes in"
        f" {PROBE_LIMIT:.0f} s ({100 * alone / max(1, alone_asked):.0f}%); behind nginx {fronted}/{asked}"
        f" ({100 * fronted / max(1, asked):.1f}%)"
    )
    assert asked >= 50 and fronted >= 0.99 * asked
