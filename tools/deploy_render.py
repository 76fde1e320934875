"""Render the deploy/ templates the way Ansible's `template` module does, with loopback defaults.

    python -m tools.deploy_render nginx --set nginx_web_nodes=127.0.0.1:5001,127.0.0.1:5002 > site.conf
    python -m tools.deploy_render nginx --standalone --set nginx_prefix=/tmp/n > /tmp/n/nginx.conf

From Python: `render("nginx", {"nginx_http_port": 8080}, standalone=True)`. A `--set` key may leave out
its `nginx_` prefix. Values are JSON when they parse as JSON; a list setting also takes a comma list.
"""

import argparse
import json
import os
import pwd
import shutil
import sys
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

# One machine, plain HTTP on 127.0.0.1: what the tests, `make cluster` and a laptop use. Production
# values are the nginx role's defaults (deploy/roles/nginx/defaults/main.yml); a test keeps both key sets equal.
NGINX_LOOPBACK = {
    "nginx_server_names": ["127.0.0.1", "localhost"],
    "nginx_listen_address": "127.0.0.1",
    "nginx_http_port": 8080,
    "nginx_https_port": 8443,
    "nginx_tls": False,
    "nginx_tls_cert": "/etc/letsencrypt/live/localhost/fullchain.pem",
    "nginx_tls_key": "/etc/letsencrypt/live/localhost/privkey.pem",
    "nginx_acme_root": "/var/www/letsencrypt",
    "nginx_hsts_seconds": 63072000,
    "nginx_web_nodes": ["127.0.0.1:5001", "127.0.0.1:5002"],
    "nginx_stream_nodes": ["127.0.0.1:5101"],
    "nginx_stream_keepalive": 32,
    "nginx_node_max_fails": 2,
    "nginx_node_fail_timeout": "5s",
    "nginx_static_root": str(ROOT / "static"),
    "nginx_media_root": str(ROOT / "instance" / "media"),
    "nginx_static_expires": "1h",
    "nginx_access_log": "off",
    "nginx_limit_zone_size": "10m",
    "nginx_login_rate": "2r/s",
    "nginx_login_burst": 20,
    "nginx_checkout_rate": "10r/s",
    "nginx_checkout_burst": 50,
    "nginx_client_header_timeout": "10s",
    "nginx_client_body_timeout": "10s",
    "nginx_send_timeout": "10s",
    "nginx_keepalive_timeout": "15s",
    "nginx_client_max_body_size": "3m",
    "nginx_proxy_connect_timeout": "2s",
    "nginx_proxy_read_timeout": "35s",
    "nginx_proxy_next_upstream_tries": 2,
    "nginx_proxy_next_upstream_timeout": "10s",
    "nginx_stream_read_timeout": "1h",
}

# Only the standalone wrapper (nginx.conf.j2) reads these; on a server Debian's nginx.conf is used.
NGINX_STANDALONE = {
    "nginx_prefix": str(ROOT / "instance" / "nginx"),
    # Empty: nginx's own default. write_standalone() keeps the workers as the user that starts it.
    "nginx_user": "",
    "nginx_worker_processes": 1,
    "nginx_worker_connections": 1024,
    "nginx_mime_types": "/etc/nginx/mime.types",
}

TARGETS = {"nginx": ("nginx/storefront.conf.j2", NGINX_LOOPBACK)}


def environment() -> jinja2.Environment:
    """Jinja2 as Ansible's template module sets it up: trimmed blocks, undefined variables are errors."""
    # Not HTML: escaping would corrupt the configuration files, and every value comes from the operator.
    return jinja2.Environment(  # noqa: S701
        loader=jinja2.FileSystemLoader([DEPLOY / "nginx", DEPLOY]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def settings(target: str, overrides: dict | None = None, standalone: bool = False) -> dict:
    """The target's loopback defaults with `overrides` on top; unknown keys are refused."""
    values = dict(TARGETS[target][1])
    if standalone:
        values.update(NGINX_STANDALONE)
    for key, value in (overrides or {}).items():
        name = key if key in values else f"{target}_{key}"
        if name not in values:
            raise KeyError(f"{key!r} is not a {target} setting")
        values[name] = value
    return values


def render(target: str, overrides: dict | None = None, standalone: bool = False) -> str:
    """Render one target; `standalone` wraps the nginx site in a whole configuration for loopback runs."""
    values = settings(target, overrides, standalone)
    template = "nginx/nginx.conf.j2" if standalone else TARGETS[target][0]
    text = environment().get_template(Path(template).name if standalone else template).render(values)
    # Ansible reads the "#jinja2:" override line and drops it; so does this (the included site's too).
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if not line.lstrip().startswith("#jinja2:"))


def write_standalone(prefix: Path, overrides: dict | None = None) -> Path:
    """Write a runnable nginx.conf (and its temp folders) under `prefix`; return the file's path."""
    prefix = Path(prefix).resolve()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    # Started as root, nginx would drop its workers to "nobody", who may not read a private folder.
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else ""
    values = {"nginx_prefix": str(prefix), "nginx_user": user, **(overrides or {})}
    config.write_text(render("nginx", values, standalone=True))
    return config


def nginx_command(config: Path, *extra: str) -> list[str]:
    """The command that runs (or with "-t", checks) a standalone configuration, unprivileged."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = str(Path(config).parent)
    return [binary, "-p", prefix, "-c", str(config), "-e", f"{prefix}/error.log", *extra]


def parse_value(raw: str, default):
    """A --set value: JSON if it parses, a comma list where the default is a list, else the string."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if isinstance(default, list):
        return [item for item in raw.split(",") if item]
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--standalone", action="store_true", help="a whole nginx.conf for a loopback run")
    parser.add_argument("--set", dest="pairs", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    defaults = settings(args.target, standalone=args.standalone)
    overrides = {}
    for pair in args.pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            parser.error(f"--set wants KEY=VALUE, not {pair!r}")
        name = key if key in defaults else f"{args.target}_{key}"
        overrides[key] = parse_value(raw, defaults.get(name))
    try:
        sys.stdout.write(render(args.target, overrides, args.standalone))
    except KeyError as error:
        parser.error(str(error.args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
