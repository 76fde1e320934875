"""A local HTTP endpoint standing in for Sentry's and Slack's: it answers 200 and keeps every request."""

import gzip
import json
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def envelope_items(self) -> list[tuple[dict, dict | str]]:
        """A Sentry envelope's items as (item header, payload) pairs (JSON payloads parsed)."""
        body, items = self.body, []
        offset = body.index(b"\n") + 1  # past the envelope header
        while offset < len(body):
            end = body.find(b"\n", offset)
            header = json.loads(body[offset : end if end != -1 else len(body)])
            offset = end + 1
            length = header.get("length")
            if length is None:
                stop = body.find(b"\n", offset)
                stop = len(body) if stop == -1 else stop
            else:
                stop = offset + length
            payload = body[offset:stop]
            offset = stop + 1
            try:
                items.append((header, json.loads(payload)))
            except ValueError:
                items.append((header, payload.decode("utf-8", errors="replace")))
        return items

    def events(self) -> list[dict]:
        return [payload for header, payload in self.envelope_items() if header.get("type") == "event"]


class Sink:
    """Start with `Sink()`, point a DSN or webhook at `url`, read `received`, `close()` at the end."""

    def __init__(self, status: int = 200):
        self.received: list[Received] = []
        self.status = status
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                with sink._lock:
                    sink.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(sink.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_address[1]}/42"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
