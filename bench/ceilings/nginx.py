"""Debian's nginx serving one static file, from a config written to the run's folder, as a non-daemon."""

import shutil
from pathlib import Path

from tools.procs import HOST, Proc, Stack, free_port, http_ok, spawn, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """# Written by the storefront bench: one static page on 127.0.0.1, in the foreground.
daemon off;
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    server {{
        listen {host}:{port};
        root {root}/www;
        location / {{ default_type text/html; }}
    }}
}}
"""


def start(stack: Stack, folder: Path, page: bytes, name: str = "product.html") -> Proc:
    """Serve `page` at /<name> from nginx on a free port; the folder is made readable for nginx's workers."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "www").mkdir(exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    (folder / "www" / name).write_bytes(page)
    for path in (folder, folder / "www", folder / "www" / name):
        path.chmod(0o755 if path.is_dir() else 0o644)
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(CONFIG.format(root=folder, host=HOST, port=port))
    command = [NGINX, "-c", str(config), "-p", str(folder), "-e", str(folder / "error.log")]
    proc = stack.add(
        spawn("nginx", command, {"PATH": "/usr/sbin:/usr/bin:/bin"}, folder / "nginx.out", folder, port)
    )
    wait_for(lambda: http_ok(port, f"/{name}") or (not proc.alive() and _exited(proc)), 15, "nginx")
    return proc


def _exited(proc: Proc) -> bool:
    raise RuntimeError(f"nginx exited ({proc.popen.returncode}): {proc.log_tail()}")
