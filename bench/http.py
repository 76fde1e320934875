"""A small asyncio HTTP/1.1 client for the load generator: raw bytes over non-blocking sockets, no dependencies.

One `Connection` per virtual user, kept alive when the server allows it (nginx does; gunicorn's sync workers
answer `Connection: close`, so each request there pays a new TCP connection, as a browser would). Plain
non-blocking sockets on the event loop's reader/writer callbacks rather than streams or Protocols, because
that costs this shared box the least CPU per request (measured: ~30% less than asyncio transports per
connect-request-close); every request has a deadline.
"""

import asyncio
import errno
import os
import re
import socket
import time

MAX_HEAD = 64 * 1024
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_CONNECTION = re.compile(rb"\r\nconnection:[ \t]*([A-Za-z-]+)", re.IGNORECASE)
MAX_BODY = 8 * 1024 * 1024


class HttpError(Exception):
    """The request did not get a complete answer (refused, reset, timed out, or garbled)."""


class Response:
    """A status, the raw head (headers parsed only when asked for), the body, and whether the connection stays."""

    __slots__ = ("_headers", "body", "head", "keep_alive", "status")

    def __init__(self, status: int, head: bytes, body: bytes, keep_alive: bool):
        self.status = status
        self.head = head
        self.body = body
        self.keep_alive = keep_alive
        self._headers: list[tuple[str, str]] | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(lower-case name, value) in order, repeats kept (Set-Cookie)."""
        if self._headers is None:
            lines = self.head.decode("latin-1").split("\r\n")[1:]
            self._headers = [
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(":") for line in lines)
            ]
        return self._headers

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a complete chunked body starting at `start`: (body, end offset), or None while incomplete."""
    parts = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 4
        if len(buffer) < position + size + 2:
            return None
        parts.append(bytes(buffer[position : position + size]))
        position += size + 2


def parse(buffer: bytearray, head_request: bool, eof: bool) -> Response | None:
    """One complete response from the front of `buffer` (consumed), None while incomplete; raises when garbled
    or when the connection ended (`eof`) before the response did."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > MAX_HEAD:
            raise HttpError("response head too large")
        if eof:
            raise HttpError("connection closed before the response head")
        return None
    head = bytes(buffer[:head_end])
    status_line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
    try:
        version, code = status_line.split(b" ", 2)[:2]
        status = int(code)
    except ValueError:
        raise HttpError(f"bad status line {status_line[:80]!r}") from None
    found = _LENGTH.search(head)
    length = int(found.group(1)) if found else None
    chunked = _CHUNKED.search(head) is not None
    connection = _CONNECTION.search(head)
    token = connection.group(1).lower() if connection else b""
    close = token == b"close" if version == b"HTTP/1.1" else token != b"keep-alive"
    body_start = head_end + 4
    if head_request or status in (204, 304) or 100 <= status < 200:
        body, end = b"", body_start
    elif chunked:
        decoded = _chunked(buffer, body_start)
        if decoded is None:
            if eof:
                raise HttpError("connection closed inside a chunked body")
            return None
        body, end = decoded
    elif length is not None:
        if length > MAX_BODY:
            raise HttpError("response body too large")
        end = body_start + length
        if len(buffer) < end:
            if eof:
                raise HttpError("connection closed before the whole body")
            return None
        body = bytes(buffer[body_start:end])
    else:  # delimited by the close
        if not eof:
            return None
        body, end, close = bytes(buffer[body_start:]), len(buffer), True
    del buffer[:end]
    return Response(status, head, body, keep_alive=not close and not eof)


class Connection:
    """A client connection to host:port over a non-blocking socket driven by the event loop's reader and
    writer callbacks (no asyncio transport: less Python per request, which matters when every request of
    gunicorn's sync workers is a new TCP connection); reconnects as needed, one request at a time."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.authority = f"{host}:{port}".encode()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self.connects = 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()

    async def _wait(self, fd: int, writer: bool, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        add, remove = (
            (loop.add_writer, loop.remove_writer) if writer else (loop.add_reader, loop.remove_reader)
        )
        add(fd, _resolve, ready)
        timer = loop.call_at(deadline, _expire, ready, self.timeout)
        try:
            await ready
        finally:
            timer.cancel()
            remove(fd)

    async def _connect(self, deadline: float) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        error = sock.connect_ex((self.host, self.port))
        try:
            if error == errno.EINPROGRESS:
                await self._wait(sock.fileno(), True, deadline)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise HttpError(f"connect to {self.host}:{self.port} failed: {os.strerror(error)}")
        except BaseException:
            sock.close()
            raise
        self.connects += 1
        return sock

    async def request(
        self, method: str, path: str, headers: bytes = b"", body: bytes | None = None
    ) -> Response:
        """Send one request (headers: extra raw header lines, each ending in CRLF) and read the answer."""
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: storefront-bench\r\n%s" % (
            method.encode(),
            path.encode(),
            self.authority,
            headers,
        )
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        data = head + b"\r\n" + (body or b"")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for attempt in (1, 2):
            reused = self._sock is not None
            try:
                if self._sock is None:
                    self._sock = await self._connect(deadline)
                response = await self._exchange(self._sock, data, method == "HEAD", deadline)
            except HttpError as error:
                stale = reused and getattr(error, "nothing_received", False)
                self.close()
                if stale and attempt == 1:
                    continue  # a kept-alive connection the server had closed: one retry on a fresh one
                raise
            except OSError as error:
                self.close()
                raise HttpError(f"{error.__class__.__name__}: {error}") from None
            if not response.keep_alive:
                self.close()
            return response
        raise HttpError("unreachable")

    async def _exchange(
        self, sock: socket.socket, data: bytes, head_request: bool, deadline: float
    ) -> Response:
        fd = sock.fileno()
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except (BrokenPipeError, ConnectionResetError) as error:
                failure = HttpError(f"send failed: {error}")
                failure.nothing_received = True
                raise failure from None
            view = view[sent:]
            if view:
                await self._wait(fd, True, deadline)
        buffer = self._buffer
        received = 0
        while True:
            try:
                chunk = sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                await self._wait(fd, False, deadline)
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received += len(chunk)
                buffer += chunk
            try:
                response = parse(buffer, head_request, eof=not chunk)
            except HttpError as error:
                error.nothing_received = received == 0
                raise
            if response is not None:
                return response


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _expire(future: asyncio.Future, seconds: float) -> None:
    if not future.done():
        future.set_exception(HttpError(f"no complete answer within {seconds:g}s"))


def now() -> float:
    return time.perf_counter()
