"""gunicorn settings for the web process; every value can be overridden from the environment."""

import os

bind = os.environ.get("BIND", "127.0.0.1:5000")
# Sync workers, a few per core: checkout is short CPU-bound work plus one database round trip,
# and on 2 cores 4 sync workers gave the best order rate and tightest p99 (gthread and gevent only
# win raw page rate, and gevent lengthened row-lock hold times). More than 4 made it worse.
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# A sync worker serves one request at a time; a hung one is recycled instead of blocking a slot for long.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 2
# Recycle workers now and then to bound any slow leak, with jitter so they never restart together.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "20000"))
max_requests_jitter = 2000
# Build the app once in the master: workers fork with it loaded (less memory, faster restarts).
preload_app = True
accesslog = os.environ.get("ACCESS_LOG") or None
# The worker pid and the time taken (µs) on every line: which worker served what, and how fast.
access_log_format = os.environ.get(
    "ACCESS_LOG_FORMAT", '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)sus pid=%(p)s "%(a)s"'
)
errorlog = "-"
# No runtime control socket: its default path is shared by every gunicorn on the host (tests, benchmark).
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
# One setting for both: with TRUSTED_PROXIES=0 (the app's ProxyFix off) gunicorn trusts no X-Forwarded-*
# either; otherwise it trusts them from the proxies' addresses (FORWARDED_ALLOW_IPS, the local nginx by default).
forwarded_allow_ips = (
    os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1") if int(os.environ.get("TRUSTED_PROXIES", "0")) else ""
)


def post_fork(server, worker):
    # Connections opened in the master before the fork must not be shared by the workers.
    from storefront.db import engines
    from wsgi import app

    for engine in engines(app):
        engine.dispose(close=False)


def on_starting(server):
    # Prometheus multiprocess files of processes that are gone would be added up for ever.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from storefront.metrics import prune_dead_files

        prune_dead_files(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
