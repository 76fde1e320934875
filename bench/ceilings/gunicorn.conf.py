"""gunicorn settings for the ceilings' minimal app: the shop's gunicorn.conf.py as is, except post_fork.

The shop's post_fork imports `wsgi` (the whole shop) to dispose of its engine; here the engine to dispose of
is the minimal app's own.
"""

import runpy
from pathlib import Path

_shop = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
globals().update({name: value for name, value in _shop.items() if not name.startswith("_") and name != "os"})


def post_fork(server, worker):
    from bench.ceilings.app import engine

    engine.dispose(close=False)
