"""A deliberately injectable app for the battery only: sqlmap must find this, or a clean scan of the shop
proves nothing. Never imported by the shop."""

import sqlite3
import threading

from flask import Flask, request
from werkzeug.serving import make_server


def create() -> Flask:
    app = Flask(__name__)
    database = sqlite3.connect(":memory:", check_same_thread=False)
    database.executescript(
        "CREATE TABLE items (id INTEGER, name TEXT); INSERT INTO items VALUES (1, 'ring');"
    )
    lock = threading.Lock()

    @app.get("/items")
    def items():
        """The bug on purpose: the query string pasted into SQL."""
        with lock:
            rows = database.execute(
                f"SELECT name FROM items WHERE id = {request.args.get('id', '1')}"
            ).fetchall()
        return {"items": [row[0] for row in rows]}

    return app


class Server:
    """The app on 127.0.0.1 in a thread of the test process, until stop()."""

    def __init__(self):
        self.server = make_server("127.0.0.1", 0, create(), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=5)
