"""A tiny HTTP/1.1 server on the daemon's own event loop, for ``/healthz`` and ``/metrics``.

Why not prometheus-client's ``start_http_server`` or a framework: the health answer needs the scheduler's
state, which lives on the event loop, and the two routes need nothing more than GET. The server reads one
request head (bounded in size and time, so a slow or hostile client cannot hold it), answers, and closes the
connection. Route handlers are coroutines; the ones that read the database do it in a worker thread, so a
scrape never blocks a poll. It binds only the address it is given (``--http``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from ..errors import WatcherError

log = logging.getLogger("watcher.http")

MAX_HEAD = 8192  # bytes of request line + headers
READ_TIMEOUT = 5.0  # seconds for a client to send its request head
MAX_CONCURRENT = 8  # requests handled at once; more wait their turn


class HttpError(WatcherError):
    """The HTTP endpoint cannot be set up (a bad address, a port in use)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[], Awaitable[Response]]


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port). Port 0 picks a free port."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise HttpError(f"--http {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 in a container)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class HttpEndpoint:
    """Serves GET/HEAD on a fixed set of paths until closed."""

    def __init__(self, address: str, routes: Mapping[str, Handler]) -> None:
        self.host, self.requested_port = parse_address(address)
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.requested_port, limit=MAX_HEAD)
        except OSError as e:
            raise HttpError(f"cannot listen on {self.host}:{self.requested_port}: {e.strerror or e}") from e
        log.info("HTTP endpoint listening on %s (%s)", self.url, ", ".join(sorted(self.routes)))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HttpEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return  # nothing sensible to answer: just close
            method, path = _request_line(head)
            response = await self._respond(method, path)
            writer.write(_encode(response, head_only=method == "HEAD"))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, method: str | None, path: str) -> Response:
        if method is None:
            return _text(HTTPStatus.BAD_REQUEST, "bad request\n")
        handler = self.routes.get(path)
        if handler is None:
            return _text(HTTPStatus.NOT_FOUND, "not found; try " + ", ".join(sorted(self.routes)) + "\n")
        if method not in ("GET", "HEAD"):
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET and HEAD\n", headers={"Allow": "GET, HEAD"})
        async with self._slots:
            try:
                return await handler()
            except Exception:  # a bug in a handler must not kill the daemon, but it must be seen
                log.exception("HTTP %s %s failed", method, path)
                return _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the daemon's log)\n")


def _request_line(head: bytes) -> tuple[str | None, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None, ""
    return parts[0].upper(), parts[1].split("?", 1)[0]


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode())


def _encode(r: Response, *, head_only: bool) -> bytes:
    phrase = HTTPStatus(r.status).phrase
    headers = {
        "Content-Type": r.content_type,
        "Content-Length": str(len(r.body)),
        "Cache-Control": "no-store",
        "Connection": "close",
        **r.headers,
    }
    head = f"HTTP/1.1 {r.status} {phrase}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + (b"" if head_only else r.body)
