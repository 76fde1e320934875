"""The nginx site from deploy/: it passes `nginx -t` as rendered for loopback and for production, and a real
nginx in front of real backends fails over GETs, never sends a POST twice, streams unbuffered and limits."""

import http.client
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests import services
from tools import deploy_render

ROLE_DEFAULTS = deploy_render.DEPLOY / "roles" / "nginx" / "defaults" / "main.yml"


def nginx_binary() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        services.unavailable("nginx (make deploy-deps)", FileNotFoundError(binary))
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_check(config: Path) -> subprocess.CompletedProcess:
    nginx_binary()
    return subprocess.run(
        deploy_render.nginx_command(config, "-t"), capture_output=True, text=True, timeout=30, check=False
    )


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=shop.test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_loopback_rendering_passes_nginx_t(tmp_path):
    config = deploy_render.write_standalone(tmp_path)
    result = nginx_check(config)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_production_defaults_with_tls_and_http2_pass_nginx_t(tmp_path):
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    cert, key = self_signed(tmp_path)
    # The role's defaults, with what Ansible would fill in from the inventory and facts made concrete.
    resolved = {
        **{name: value for name, value in defaults.items() if name in deploy_render.NGINX_LOOPBACK},
        "nginx_server_names": ["shop.test"],
        "nginx_web_nodes": ["10.0.0.11:8000", "10.0.0.12:8000"],
        "nginx_stream_nodes": ["10.0.0.11:8100"],
        "nginx_static_root": str(tmp_path / "static"),
        "nginx_media_root": str(tmp_path / "media"),
        "nginx_tls_cert": str(cert),
        "nginx_tls_key": str(key),
        "nginx_access_log": str(tmp_path / "access.log"),
    }
    site = deploy_render.render("nginx", resolved)
    assert "listen *:443 ssl http2;" in site
    assert "return 301 https://$host$request_uri;" in site
    assert "Strict-Transport-Security" in site
    result = nginx_check(deploy_render.write_standalone(tmp_path, resolved))
    assert result.returncode == 0, result.stderr


def test_role_defaults_and_loopback_defaults_name_the_same_settings():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    # The role also says where the site goes and how a throw-away run wraps it (the standalone settings).
    site_settings = set(defaults) - {"nginx_conf_dir"} - set(deploy_render.NGINX_STANDALONE)
    assert site_settings == set(deploy_render.NGINX_LOOPBACK)
    assert set(deploy_render.NGINX_STANDALONE) - {"nginx_user"} <= set(defaults)


def test_unknown_setting_is_refused():
    with pytest.raises(KeyError):
        deploy_render.render("nginx", {"nginx_no_such_thing": 1})


def test_command_line_renders_with_set_values(tmp_path):
    result = subprocess.run(
        [
            *("python", "-m", "tools.deploy_render", "nginx"),
            *("--set", "web_nodes=127.0.0.1:7001,127.0.0.1:7002", "--set", "nginx_http_port=9999"),
        ],
        cwd=deploy_render.ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "server 127.0.0.1:7001 " in result.stdout
    assert "server 127.0.0.1:7002 " in result.stdout
    assert "listen 127.0.0.1:9999;" in result.stdout


class Backend:
    """A web node that records every request it reads; a dying one reads it and closes without answering."""

    def __init__(self, name: str, dies: bool):
        self.name, self.dies = name, dies
        self.seen: list[tuple[str, str, str]] = []
        self.stream_released = threading.Event()
        self.client_got_first_event = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                backend.seen.append((method, self.path, body or self.headers.get("X-Request-ID", "")))
                if backend.dies:
                    self.close_connection = True
                    return
                if self.path.startswith("/stream/"):
                    return self.stream()
                payload = f"{backend.name} {self.headers.get('X-Request-ID', '')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                first = b"data: 1\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(first), first))
                self.wfile.flush()
                # The rest is sent only once the shopper has the first event, or after 10 s if nginx holds it.
                backend.stream_released.set()
                released = backend.client_got_first_event.wait(10)
                last = b"data: released\n\n" if released else b"data: timed-out\n\n"
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))

            def do_GET(self):
                self.answer("GET")

            def do_POST(self):
                self.answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front(tmp_path):
    """A real nginx on the loopback rendering, in front of one dying and one healthy backend."""
    nginx_binary()
    dying, healthy = Backend("dying", dies=True), Backend("healthy", dies=False)
    streamer = Backend("streamer", dies=False)
    port = free_port()
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "js" / "htmx-2.0.11.min.js").write_text("/* vendored */")
    (static / "css").mkdir()
    (static / "css" / "app.css").write_text("body{}")
    for path in (tmp_path, static, static / "js", static / "css"):
        path.chmod(0o755)
    config = deploy_render.write_standalone(
        tmp_path / "nginx",
        {
            "nginx_http_port": port,
            "nginx_web_nodes": [f"127.0.0.1:{dying.port}", f"127.0.0.1:{healthy.port}"],
            "nginx_stream_nodes": [f"127.0.0.1:{streamer.port}"],
            # No passive health marking: round robin keeps sending every other request to the dying node.
            "nginx_node_max_fails": 0,
            "nginx_static_root": str(static),
            "nginx_login_rate": "1r/m",
            "nginx_login_burst": 2,
        },
    )
    proc = subprocess.Popen(
        deploy_render.nginx_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()}") from None
            time.sleep(0.1)
    yield port, dying, healthy, streamer
    proc.terminate()
    proc.wait(timeout=15)
    for backend in (dying, healthy, streamer):
        backend.close()


def request(port: int, method: str, path: str, body: str | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read().decode()
    connection.close()
    return result


def test_get_that_a_dead_node_dropped_is_answered_by_the_next_node(front):
    port, dying, _, _ = front
    answers = [request(port, "GET", f"/products/{n}") for n in range(6)]
    assert [status for status, _, _ in answers] == [200] * 6
    assert all(text.startswith("healthy ") for _, _, text in answers)
    assert dying.seen, "round robin never tried the dying node"


def test_post_that_reached_a_node_is_never_sent_to_another(front):
    port, dying, healthy, _ = front
    answers = [request(port, "POST", "/cart/add", body=f"order={n}") for n in range(6)]
    dying_bodies = {body for method, _, body in dying.seen if method == "POST"}
    healthy_bodies = {body for method, _, body in healthy.seen if method == "POST"}
    assert dying_bodies, "round robin never sent a POST to the dying node"
    assert dying_bodies.isdisjoint(healthy_bodies)
    assert len(dying_bodies) + len(healthy_bodies) == 6
    # The shopper whose POST was lost gets nginx's "try again", never a 500 or a silent success.
    refused = [(status, headers) for status, headers, _ in answers if status != 200]
    assert len(refused) == len(dying_bodies)
    assert all(status == 503 and headers.get("Retry-After") for status, headers in refused)


def test_every_answer_carries_the_request_id_the_node_was_given(front):
    port, _, _, _ = front
    answers = [request(port, "GET", f"/p/{n}") for n in range(4)]
    assert all(status == 200 for status, _, _ in answers)
    for _, headers, text in answers:
        assert len(headers["X-Request-ID"]) == 32
        assert text == f"healthy {headers['X-Request-ID']}"


def test_versioned_static_files_are_cached_for_a_year_and_others_briefly(front):
    port, _, _, _ = front
    status, headers, text = request(port, "GET", "/static/js/htmx-2.0.11.min.js")
    assert status == 200 and text == "/* vendored */"
    assert "max-age=31536000" in headers["Cache-Control"] and "immutable" in headers["Cache-Control"]
    status, headers, _ = request(port, "GET", "/static/css/app.css")
    assert status == 200
    assert headers["Cache-Control"] == "max-age=3600"


def test_stream_events_go_to_the_stream_pool_and_reach_the_shopper_before_it_finishes(front):
    port, _, healthy, streamer = front
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/stream/stock/1")
    response = connection.getresponse()
    assert response.status == 200
    first = response.readline()
    # Got while the node is still holding the rest back: nothing in between buffered it.
    streamer.client_got_first_event.set()
    assert first == b"data: 1\n"
    assert b"data: released" in response.read()
    connection.close()
    assert [path for _, path, _ in streamer.seen] == ["/stream/stock/1"]
    assert not healthy.seen


def test_login_posts_past_the_burst_get_429_with_retry_after_but_the_page_does_not(front):
    port, _, _, _ = front
    statuses = [request(port, "POST", "/login", body=f"n={n}")[:2] for n in range(6)]
    limited = [headers for status, headers in statuses if status == 429]
    assert limited and all(headers.get("Retry-After") for headers in limited)
    assert [request(port, "GET", "/login")[0] for _ in range(4)].count(429) == 0
