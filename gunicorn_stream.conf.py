"""gunicorn settings for the live stock stream pool (gevent); every value can be overridden from the environment.

`gunicorn -c gunicorn_stream.conf.py wsgi_stream:app`, with `--bind` appended where the Procfile or a test wants.
"""

import os

bind = os.environ.get("STREAM_BIND", "127.0.0.1:5001")
# Thousands of open streams that mostly wait: greenlets, not threads. One Redis subscription per worker.
worker_class = "gevent"
workers = int(os.environ.get("STREAM_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("STREAM_WORKER_CONNECTIONS", "10000"))
# Streams are long on purpose; `timeout` only watches the worker's own heartbeat, which gevent keeps beating.
timeout = 30
graceful_timeout = 5  # streams are cut at a restart; clients come back (retry: with jitter, Last-Event-ID)
keepalive = 75
# Not preloaded: the app must be imported after gevent has patched the worker (sockets, threads, locks).
preload_app = False
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
