"""Real servers on 127.0.0.1 for the test suite, and small builders for feed documents.

The house rule is "real parts in tests": feeds come from a real HTTP server, mail goes to a real SMTP server and
webhooks to a real HTTP receiver, all on loopback and all started by the test that needs them.

    FeedServer       HTTP server for feed documents; conditional GET, failures on demand, records requests
    WebhookReceiver  HTTP server collecting POSTs (apprise ``json://``); fails or hangs on demand
    SmtpServer       aiosmtpd on loopback collecting mail (apprise ``mailto://``); optional AUTH and STARTTLS
    make_rss / make_atom   build RSS 2.0 / Atom 1.0 documents from plain dicts

Every server binds port 0 on 127.0.0.1, exposes ``.port`` and ``.url``, has idempotent ``start()``/``stop()``,
restarts on the SAME port after a ``stop()`` (outage tests), and is a context manager. ``stop()`` returns within
about a second even while a response is hanging or trickling: every wait inside a handler is on a stop event,
live connections are shut down, and handler threads are daemons joined with a deadline.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import enum
import gzip as gzip_module
import hashlib
import io
import json
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape, quoteattr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as _AioEnvelope

__all__ = [
    "ATOM_CONTENT_TYPE",
    "HOST",
    "RSS_CONTENT_TYPE",
    "FeedServer",
    "Received",
    "Request",
    "SmtpEnvelope",
    "SmtpServer",
    "TlsCert",
    "TlsUnavailable",
    "WebhookReceiver",
    "make_atom",
    "make_rss",
    "make_self_signed_cert",
]

HOST = "127.0.0.1"
RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"

_STOP_JOIN_SECONDS = 1.0  # how long stop() waits for handler threads before abandoning them (they are daemons)
_POLL_INTERVAL = 0.05  # serve_forever's shutdown poll: shutdown() returns within this


class _Keep(enum.Enum):
    """Sentinel for FeedServer.behave: "leave this setting as it is" (None is a meaningful value there)."""

    KEEP = enum.auto()


KEEP = _Keep.KEEP


@dataclass(frozen=True)
class Request:
    """One HTTP request as a server saw it."""

    method: str  # "GET", "POST", ...
    path: str  # the request target, query string included: "/feed.xml?x=1"
    headers: dict[str, str]  # header names lower-cased; a repeated header keeps its last value
    body: bytes = b""  # the request body (webhooks); b"" for GET
    at: float = 0.0  # time.monotonic() when the request had been read (retry/backoff timing)


# ---------------------------------------------------------------------------------------------------------------
# HTTP plumbing shared by FeedServer and WebhookReceiver
# ---------------------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose handler threads are tracked by the owner, so stop() can unblock and join them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # SO_REUSEADDR: rebinding the same port right after stop() works

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], owner: _HTTPServerBase) -> None:
        self.owner = owner
        super().__init__((HOST, port), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{type(self.owner).__name__}-conn",
            daemon=True,
        )
        self.owner._track(request, thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.owner._untrack(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away (timeouts, resets, our own abort) is business as usual in these tests.
        error = sys.exc_info()[1]
        if error is None or isinstance(error, OSError):
            return
        self.owner._errors.append(error)  # a bug in a handler: the fixtures fail the test on it
        super().handle_error(request, client_address)  # prints the traceback


class _Handler(BaseHTTPRequestHandler):
    """Delegates every request to the owning server object; speaks HTTP/1.1 with keep-alive."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # socket timeout: a backstop against a client that never sends its request
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def _dispatch(self) -> None:
        self.server.owner._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def _lower_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    return {name.lower(): value for name, value in handler.headers.items()}


def _abort(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection abruptly: SO_LINGER 0 makes close() send a TCP RST instead of a FIN."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The makefile() objects hold references to the socket: close them first so close() really closes, and
    # give the handler a harmless wfile for the flush() that http.server does after every request.
    handler.wfile.close()
    handler.rfile.close()
    handler.connection.close()
    handler.wfile = io.BytesIO()


class _HTTPServerBase:
    """Start/stop, port and connection bookkeeping for a ThreadingHTTPServer on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._lock = threading.Lock()  # guards the request log and the subclass state
        self._stopping = threading.Event()  # set during stop(): every wait in a handler ends at once
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._requests: list[Request] = []
        self._errors: list[BaseException] = []

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 (port 0 the first time, then the same port again) and serve. Idempotent."""
        with self._lifecycle:
            if self._server is not None:
                return self
            self._stopping.clear()
            server = _HTTPServer(self._port, _Handler, self)
            self._port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"{type(self).__name__}-{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        """Stop accepting, drop live connections (hanging ones included) and release the port. Idempotent."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self._server = self._thread = None
            self._stopping.set()
            server.shutdown()
            server.server_close()
            thread.join(_STOP_JOIN_SECONDS)
            with self._lock:
                connections = list(self._connections.items())
            for sock, _ in connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked reading the next keep-alive request
            deadline = time.monotonic() + _STOP_JOIN_SECONDS
            for _, conn_thread in connections:
                conn_thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised inside request handlers (bugs here, not client disconnects)."""
        return list(self._errors)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port; stays the same across stop()/start()."""
        if self._port == 0:
            raise RuntimeError(f"{type(self).__name__} has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    def url_for(self, path: str) -> str:
        """``http://127.0.0.1:PORT/path``."""
        return self.url + _slash(path)

    # -- request log ----------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def count(self, path: str) -> int:
        """How many requests hit ``path`` (a path without "?" also counts requests to it with a query string)."""
        return len(self._requests_for(path))

    def last_headers(self, path: str) -> dict[str, str]:
        """The lower-cased headers of the latest request to ``path``; AssertionError if there was none."""
        matching = self._requests_for(path)
        if not matching:
            seen = sorted({r.path for r in self.requests})
            raise AssertionError(f"no request to {path!r}; requests seen: {seen or 'none'}")
        return matching[-1].headers

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _requests_for(self, path: str) -> list[Request]:
        path = _slash(path)
        with_query = "?" in path
        return [r for r in self.requests if (r.path if with_query else r.path.split("?", 1)[0]) == path]

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes = b"") -> Request:
        request = Request(handler.command, handler.path, _lower_headers(handler), body, time.monotonic())
        with self._lock:
            self._requests.append(request)
        return request

    # -- connection tracking (called by _HTTPServer) -------------------------------------------------------------

    def _track(self, sock: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[sock] = thread

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def _handle(self, handler: _Handler) -> None:
        raise NotImplementedError

    # -- helpers for handlers -----------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the server is stopping (the caller should give up)."""
        return self._stopping.wait(seconds)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if body and handler.command != "HEAD":
            handler.wfile.write(body)


def _slash(path: str) -> str:
    return path if path.startswith("/") else "/" + path


# ---------------------------------------------------------------------------------------------------------------
# FeedServer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    body: bytes  # the entity (before gzip)
    content_type: str
    status: int
    etag: str | None  # the quoted ETag sent with 200/304, or None
    last_modified: str | None
    headers: dict[str, str]  # extra headers, sent last (they override ours)
    gzip: bool
    chunked: bool
    raw_body: bytes | None
    hang: float | None
    delay: float | None
    trickle: tuple[int, float] | None
    reset_after: int | None
    redirect_to: str | None
    redirect_status: int
    retry_after: str | None


def _etag_for(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _strip_weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _not_modified(route: _Route, headers: Mapping[str, str]) -> bool:
    """RFC 9110 13.1: If-None-Match wins over If-Modified-Since; ETags compare weakly."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if route.etag is None:
            return False
        tags = {_strip_weak(tag.strip()) for tag in if_none_match.split(",")}
        return "*" in tags or _strip_weak(route.etag) in tags
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is None or route.last_modified is None:
        return False
    if if_modified_since == route.last_modified:
        return True
    try:
        return parsedate_to_datetime(if_modified_since) >= parsedate_to_datetime(route.last_modified)
    except (TypeError, ValueError):  # unparsable, or naive against aware
        return False


_HEADERS_OF_304 = frozenset({"cache-control", "expires", "date", "vary", "content-location"})


def _chunked(payload: bytes, size: int) -> bytes:
    size = max(1, size)
    parts = [
        b"%X\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size]) for i in range(0, len(payload), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


class FeedServer(_HTTPServerBase):
    """An HTTP server for feed documents, one route per path, each with its own misbehaviour.

    ``add()`` registers or replaces a route and returns its URL; ``behave()`` changes how an existing route
    misbehaves while keeping its body and validators. Unknown paths answer 404; methods other than GET/HEAD
    answer 405. Every request is recorded (``requests``, ``count``, ``last_headers``).
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._routes: dict[str, _Route] = {}

    def add(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        content_type: str = RSS_CONTENT_TYPE,
        status: int = 200,
        etag: str | bool | None = True,
        last_modified: str | None = None,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
        chunked: bool = False,
        raw_body: bytes | None = None,
        hang: float | None = None,
        delay: float | None = None,
        trickle: tuple[int, float] | None = None,
        reset_after: int | None = None,
        redirect_to: str | None = None,
        redirect_status: int = 301,
        retry_after: str | None = None,
    ) -> str:
        """Register (or replace) the route at ``path``; return its URL (only the path before the first start()).

        body           the document; a str is encoded as UTF-8
        content_type   Content-Type header
        status         response status; the body is sent with any status (an error page)
        etag           True: a quoted hash of the body (a new body gives a new ETag); a str: that exact ETag
                       (quotes included, e.g. '"v1"' or 'W/"v1"'); None/False: no ETag
        last_modified  Last-Modified header value (an HTTP date), or None
        headers        extra response headers, sent last (they can override Content-Type or Content-Length)
        gzip           send the body gzip-compressed with Content-Encoding: gzip
        chunked        Transfer-Encoding: chunked instead of Content-Length
        raw_body       send these bytes verbatim instead of the body (pre-compressed bombs etc.); set any
                       Content-Encoding yourself through ``headers``; Content-Length is len(raw_body)
        hang           read the request, send nothing for this many seconds, then close without a response
        delay          wait this many seconds, then respond normally (a slow first byte)
        trickle        (bytes_per_tick, seconds_per_tick): headers at once, then the body slowly
        reset_after    send the headers (full Content-Length) and this many body bytes, then reset (TCP RST)
        redirect_to    answer ``redirect_status`` with Location: this path (made absolute) or absolute URL
        retry_after    Retry-After header value (meant for 429/503)

        ETag and Last-Modified are sent with 2xx and 304 responses only. A request whose If-None-Match matches
        the ETag (or, without If-None-Match, whose If-Modified-Since is not older than last_modified) gets a 304
        with no body, when the route's status is 200.
        """
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        route = _Route(
            body=raw,
            content_type=content_type,
            status=status,
            etag=_etag_for(raw) if etag is True else (etag or None),
            last_modified=last_modified,
            headers=dict(headers or {}),
            gzip=gzip,
            chunked=chunked,
            raw_body=raw_body,
            hang=hang,
            delay=delay,
            trickle=trickle,
            reset_after=reset_after,
            redirect_to=redirect_to,
            redirect_status=redirect_status,
            retry_after=retry_after,
        )
        with self._lock:
            self._routes[_slash(path)] = route
        return self.url_for(path) if self._port else _slash(path)

    def behave(
        self,
        path: str,
        *,
        status: int | _Keep = KEEP,
        headers: Mapping[str, str] | _Keep = KEEP,
        gzip: bool | _Keep = KEEP,
        chunked: bool | _Keep = KEEP,
        raw_body: bytes | _Keep | None = KEEP,
        hang: float | _Keep | None = KEEP,
        delay: float | _Keep | None = KEEP,
        trickle: tuple[int, float] | _Keep | None = KEEP,
        reset_after: int | _Keep | None = KEEP,
        redirect_to: str | _Keep | None = KEEP,
        redirect_status: int | _Keep = KEEP,
        retry_after: str | _Keep | None = KEEP,
    ) -> None:
        """Change how the existing route at ``path`` responds (same meanings as in ``add``); body, ETag and
        Last-Modified stay. Pass None to switch a behaviour off, e.g. ``behave(p, status=200, hang=None)``."""
        changes: dict[str, Any] = {
            name: value
            for name, value in {
                "status": status,
                "headers": headers if isinstance(headers, _Keep) else dict(headers),
                "gzip": gzip,
                "chunked": chunked,
                "raw_body": raw_body,
                "hang": hang,
                "delay": delay,
                "trickle": trickle,
                "reset_after": reset_after,
                "redirect_to": redirect_to,
                "redirect_status": redirect_status,
                "retry_after": retry_after,
            }.items()
            if value is not KEEP
        }
        key = _slash(path)
        with self._lock:
            if key not in self._routes:
                raise KeyError(f"no route {key!r}; add() it first (routes: {sorted(self._routes)})")
            self._routes[key] = replace(self._routes[key], **changes)

    def remove(self, path: str) -> None:
        """Forget the route: the path answers 404 from now on."""
        with self._lock:
            self._routes.pop(_slash(path), None)

    def etag(self, path: str) -> str | None:
        """The ETag the route currently sends."""
        with self._lock:
            return self._routes[_slash(path)].etag

    def _lookup(self, path: str) -> _Route | None:
        with self._lock:
            return self._routes.get(path) or self._routes.get(path.split("?", 1)[0])

    def _handle(self, handler: _Handler) -> None:
        self._record(handler)
        route = self._lookup(handler.path)
        if route is None:
            self._send(handler, 404, {"Content-Type": "text/plain", "Content-Length": "9"}, b"not found")
            return
        if handler.command not in ("GET", "HEAD"):
            self._send(handler, 405, {"Allow": "GET, HEAD", "Content-Length": "0"})
            return
        if route.hang is not None:
            self._wait(route.hang)
            handler.close_connection = True  # nothing was sent; the connection just ends
            return
        if route.delay is not None and self._wait(route.delay):
            handler.close_connection = True
            return
        if route.redirect_to is not None:
            target = route.redirect_to
            location = self.url_for(target) if target.startswith("/") else target
            self._send(handler, route.redirect_status, {"Location": location, "Content-Length": "0"})
            return

        validators: dict[str, str] = {}
        if route.etag is not None:
            validators["ETag"] = route.etag
        if route.last_modified is not None:
            validators["Last-Modified"] = route.last_modified
        if route.status == 200 and _not_modified(route, _lower_headers(handler)):
            # RFC 9110 15.4.5: a 304 repeats the caching headers a 200 would carry
            cache = {k: v for k, v in route.headers.items() if k.lower() in _HEADERS_OF_304}
            self._send(handler, 304, {**validators, **cache})
            return

        headers: dict[str, str] = {"Content-Type": route.content_type}
        if 200 <= route.status < 300:
            headers.update(validators)
        if route.retry_after is not None:
            headers["Retry-After"] = route.retry_after
        if route.raw_body is not None:
            payload = route.raw_body
        elif route.gzip:
            payload = gzip_module.compress(route.body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        else:
            payload = route.body
        if route.chunked:
            headers["Transfer-Encoding"] = "chunked"
            payload = _chunked(payload, route.trickle[0] if route.trickle else 16384)
        else:
            headers["Content-Length"] = str(len(payload))
        headers.update(route.headers)

        self._send(handler, route.status, headers)
        if handler.command == "HEAD":
            return
        if route.reset_after is not None:
            handler.wfile.write(payload[: route.reset_after])
            self._wait(0.05)  # let the client read the partial body before the reset
            _abort(handler)
        elif route.trickle is not None:
            step, pause = route.trickle
            step = max(1, step)
            for i in range(0, len(payload), step):
                if i and self._wait(pause):
                    _abort(handler)
                    return
                handler.wfile.write(payload[i : i + step])
        else:
            handler.wfile.write(payload)


# ---------------------------------------------------------------------------------------------------------------
# WebhookReceiver
# ---------------------------------------------------------------------------------------------------------------


class Received(NamedTuple):
    """One accepted webhook delivery."""

    path: str  # "/hook"
    headers: dict[str, str]  # lower-cased names
    body: Any  # the parsed JSON when the body is JSON, else the raw bytes


@dataclass(frozen=True)
class _Action:
    status: int  # answer this status (hang: ignored)
    body: bytes
    hang: float | None  # hold the connection this long, then close without answering


class WebhookReceiver(_HTTPServerBase):
    """An HTTP receiver for webhooks (any method; apprise ``json://`` POSTs).

    ``received`` holds the deliveries that were answered 200; ``requests`` holds every attempt, failed and hung
    ones included. ``fail_next``/``hang_next`` queue misbehaviours that the next requests consume in order.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._received: list[Received] = []
        self._actions: deque[_Action] = deque()
        self._arrived = threading.Condition(self._lock)

    def apprise_url(self, path: str = "/hook") -> str:
        """``json://127.0.0.1:PORT/hook``: apprise POSTs {"version","title","message","attachments","type"}."""
        return f"json://{HOST}:{self.port}{_slash(path)}"

    @property
    def received(self) -> list[Received]:
        """The accepted deliveries, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    def fail_next(self, n: int = 1, status: int = 500, body: bytes | str = b"") -> None:
        """The next ``n`` requests are answered ``status`` (with ``body``) and not counted as received."""
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._actions.extend(_Action(status, raw, None) for _ in range(n))

    def hang_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """The next ``n`` requests are read, held ``seconds`` with no answer, then closed; not received."""
        with self._lock:
            self._actions.extend(_Action(0, b"", seconds) for _ in range(n))

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``n`` deliveries were accepted; return them. AssertionError on timeout."""
        with self._arrived:
            if self._arrived.wait_for(lambda: len(self._received) >= n, timeout):
                return list(self._received)
            got, attempts = list(self._received), list(self._requests)
        raise AssertionError(
            f"webhook: expected {n} deliveries within {timeout}s, got {len(got)} "
            f"({len(attempts)} requests in all: {[f'{r.method} {r.path}' for r in attempts]}); "
            f"received: {[(r.path, r.body) for r in got]}"
        )

    def clear(self) -> None:
        """Forget deliveries, requests and queued misbehaviours."""
        with self._lock:
            self._received.clear()
            self._requests.clear()
            self._actions.clear()

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = self._record(handler, raw)
        with self._lock:
            action = self._actions.popleft() if self._actions else None
        if action is not None and action.hang is not None:
            self._wait(action.hang)
            handler.close_connection = True
            return
        if action is not None:
            self._send(handler, action.status, {"Content-Length": str(len(action.body))}, action.body)
            return
        body: Any = raw
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        with self._arrived:
            self._received.append(Received(request.path, request.headers, body))
            self._arrived.notify_all()
        self._send(handler, 200, {"Content-Type": "text/plain", "Content-Length": "2"}, b"OK")


# ---------------------------------------------------------------------------------------------------------------
# SmtpServer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpEnvelope:
    """What the SMTP client said, besides the message itself."""

    mail_from: str  # MAIL FROM address
    rcpt_tos: list[str]  # RCPT TO addresses
    data: bytes  # the message as received (after dot-unstuffing)
    login: str | None  # the AUTH user of the session, or None
    tls: bool  # True when the session had switched to TLS (STARTTLS)


@dataclass(frozen=True)
class TlsCert:
    """A self-signed certificate for 127.0.0.1/localhost; ``cert`` is also the CA file a client would trust."""

    cert: Path
    key: Path


class TlsUnavailable(RuntimeError):
    """No way to make a certificate here (the ``openssl`` CLI is not on PATH)."""


def make_self_signed_cert(directory: Path) -> TlsCert:
    """Write a fresh self-signed EC certificate (CN=localhost, SAN IP:127.0.0.1 + DNS:localhost, 1 day) into
    ``directory`` with the ``openssl`` CLI. Raises TlsUnavailable when openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsUnavailable("the openssl CLI is not on PATH (needed to make a self-signed certificate)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    # fmt: off
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True, capture_output=True, timeout=30,
    )
    # fmt: on
    return TlsCert(cert=cert, key=key)


class _BoundController(Controller):
    """aiosmtpd's Controller serving a socket we bound ourselves (Controller cannot bind port 0 on its own:
    its readiness probe connects to the configured port)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class _SmtpHandler:
    """aiosmtpd handler; every attribute named handle_* or auth_* is a hook for aiosmtpd, so nothing else is."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: _AioEnvelope, address: str, mail_options: list[str]
    ) -> str:
        # Enforce AUTH here rather than with SMTP(auth_required=True), which warns when TLS is not required.
        if self._owner.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: _AioEnvelope) -> str:
        return self._owner._deliver(session, envelope)


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 collecting every message it accepts.

    auth      (user, password): offer AUTH LOGIN/PLAIN without TLS and refuse MAIL FROM before a good login
    tls_cert  a TlsCert (see make_self_signed_cert): offer STARTTLS with it
    """

    def __init__(self, *, port: int = 0, auth: tuple[str, str] | None = None, tls_cert: TlsCert | None = None) -> None:
        self._port = port
        self.auth = auth
        self.tls_cert = tls_cert
        self._controller: _BoundController | None = None
        self._lifecycle = threading.Lock()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._messages: list[EmailMessage] = []
        self._envelopes: list[SmtpEnvelope] = []
        self._rejects: deque[str] = deque()
        self._logins: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 (port 0 the first time, then the same port again). Idempotent."""
        with self._lifecycle:
            if self._controller is not None:
                return self
            sock = socket.create_server((HOST, self._port))  # SO_REUSEADDR is set on POSIX
            self._port = sock.getsockname()[1]
            kwargs: dict[str, Any] = {"server_hostname": "localhost", "ready_timeout": 5.0}
            if self.auth is not None:
                kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
            if self.tls_cert is not None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(self.tls_cert.cert, self.tls_cert.key)
                kwargs["tls_context"] = context
            controller = _BoundController(_SmtpHandler(self), sock, **kwargs)
            try:
                controller.start()
            except BaseException:
                if not controller.loop.is_closed():
                    if controller.loop.is_running():
                        controller.stop(no_assert=True)
                    else:
                        controller.loop.close()
                sock.close()
                raise
            self._controller = controller
            return self

    def stop(self) -> None:
        """Close the listener and every session; the port is free for start() again. Idempotent."""
        with self._lifecycle:
            controller, self._controller = self._controller, None
            if controller is not None:
                controller.stop()
                controller._sock.close()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("SmtpServer has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """``smtp://127.0.0.1:PORT``."""
        return f"smtp://{HOST}:{self.port}"

    def apprise_url(
        self,
        *,
        to: str = "analyst@example.com",
        sender: str = "watcher@example.com",
        credentials: tuple[str, str] | None = None,
    ) -> str:
        """The apprise URL that delivers here.

        Plain: ``mailto://[user:pass@]127.0.0.1:PORT?mode=insecure&from=...&to=...``; credentials default to
        ``auth``. With tls_cert: ``mailtos://...?mode=starttls&verify=no&...`` (the certificate is self-signed).
        """
        user_pass = credentials if credentials is not None else self.auth
        userinfo = f"{quote(user_pass[0], safe='')}:{quote(user_pass[1], safe='')}@" if user_pass else ""
        if self.tls_cert is not None:
            scheme, query = "mailtos", {"mode": "starttls", "verify": "no"}
        else:
            scheme, query = "mailto", {"mode": "insecure"}
        query.update({"from": sender, "to": to})
        return f"{scheme}://{userinfo}{HOST}:{self.port}?{urlencode(query, safe='@')}"

    # -- what arrived -------------------------------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        """Accepted messages, oldest first, parsed with email.policy.default (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[SmtpEnvelope]:
        """The envelope of each accepted message, same order as ``messages`` (a copy)."""
        with self._lock:
            return list(self._envelopes)

    @property
    def logins(self) -> list[str]:
        """Users that authenticated successfully, one entry per session."""
        with self._lock:
            return list(self._logins)

    def reject_next(self, n: int = 1, reply: str = "451 4.3.0 Try again later") -> None:
        """The next ``n`` messages are refused at end of DATA with this SMTP reply (and not collected)."""
        with self._lock:
            self._rejects.extend([reply] * n)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least ``n`` messages arrived; return them. AssertionError on timeout."""
        with self._arrived:
            if self._arrived.wait_for(lambda: len(self._messages) >= n, timeout):
                return list(self._messages)
            subjects = [str(m.get("Subject")) for m in self._messages]
        state = "running" if self.running else "STOPPED"
        raise AssertionError(
            f"smtp ({state} on port {self._port}): expected {n} messages within {timeout}s, "
            f"got {len(subjects)}: subjects {subjects}"
        )

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._envelopes.clear()
            self._logins.clear()
            self._rejects.clear()

    # -- aiosmtpd callbacks (event-loop thread) -------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: _AioEnvelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.auth is not None:
            login = auth_data.login.decode("utf-8", "replace")
            if (login, auth_data.password.decode("utf-8", "replace")) == self.auth:
                with self._lock:
                    self._logins.append(login)
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _deliver(self, session: Session, envelope: _AioEnvelope) -> str:
        with self._arrived:
            if self._rejects:
                return self._rejects.popleft()
            data = envelope.original_content or b""
            message = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            login = session.auth_data if isinstance(session.auth_data, str) else None
            self._envelopes.append(
                SmtpEnvelope(envelope.mail_from or "", list(envelope.rcpt_tos), data, login, session.ssl is not None)
            )
            self._messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"


# ---------------------------------------------------------------------------------------------------------------
# Feed documents
# ---------------------------------------------------------------------------------------------------------------

_ITEM_KEYS = frozenset({"guid", "id", "title", "link", "summary", "published", "updated", "author"})
_FALLBACK_UPDATED = datetime(2025, 1, 1, tzinfo=UTC)


def _check_keys(item: Mapping[str, Any]) -> None:
    unknown = set(item) - _ITEM_KEYS
    if unknown:
        raise ValueError(f"unknown item keys {sorted(unknown)}; use {sorted(_ITEM_KEYS)}")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # naive means UTC


def _rfc822(value: datetime | str) -> str:
    return value if isinstance(value, str) else format_datetime(_aware(value))


def _rfc3339(value: datetime | str) -> str:
    return value if isinstance(value, str) else _aware(value).isoformat(timespec="seconds")


def _element(tag: str, value: Any, render: Callable[[Any], str] = str) -> str:
    return "" if value is None else f"<{tag}>{escape(render(value))}</{tag}>"


def make_rss(
    items: Sequence[Mapping[str, Any]],
    title: str = "Test feed",
    *,
    link: str = "http://example.com/",
    description: str = "A feed served by the watcher test suite",
) -> str:
    """An RSS 2.0 document. Item keys (all optional): guid (or id), title, link, summary, published, author.

    ``published`` is a datetime (naive means UTC), rendered RFC 822, or a str sent verbatim (odd dates).
    Text is XML-escaped, so a summary holding markup arrives as that markup after parsing.
    """
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0">\n<channel>',
        _element("title", title),
        _element("link", link),
        _element("description", description),
    ]
    for item in items:
        _check_keys(item)
        guid = item.get("guid", item.get("id"))
        parts += [
            "<item>",
            _element("title", item.get("title")),
            _element("link", item.get("link")),
            "" if guid is None else f'<guid isPermaLink="false">{escape(str(guid))}</guid>',
            _element("description", item.get("summary")),
            _element("author", item.get("author")),
            _element("pubDate", item.get("published"), _rfc822),
            "</item>",
        ]
    parts.append("</channel>\n</rss>\n")
    return "\n".join(p for p in parts if p)


def make_atom(
    items: Sequence[Mapping[str, Any]],
    title: str = "Test feed",
    *,
    feed_id: str = "urn:watcher-tests:feed",
    link: str = "http://example.com/",
) -> str:
    """An Atom 1.0 document. Entry keys (all optional): id (or guid), title, link, summary, published, updated,
    author. Dates: datetime (naive means UTC) rendered RFC 3339, or str verbatim. Atom requires <updated>: it is
    ``updated``, else ``published``, else 2025-01-01T00:00:00Z."""
    newest = max(
        (_aware(d) for i in items for d in (i.get("updated"), i.get("published")) if isinstance(d, datetime)),
        default=_FALLBACK_UPDATED,
    )
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
        _element("title", title),
        _element("id", feed_id),
        f"<link href={quoteattr(link)}/>",
        _element("updated", newest, _rfc3339),
    ]
    for item in items:
        _check_keys(item)
        published = item.get("published")
        updated = item.get("updated", published if published is not None else _FALLBACK_UPDATED)
        parts += [
            "<entry>",
            _element("id", item.get("id", item.get("guid"))),
            _element("title", item.get("title")),
            "" if item.get("link") is None else f'<link rel="alternate" href={quoteattr(str(item["link"]))}/>',
            _element("summary", item.get("summary")),
            "" if item.get("author") is None else f"<author>{_element('name', item['author'])}</author>",
            _element("published", published, _rfc3339),
            _element("updated", updated, _rfc3339),
            "</entry>",
        ]
    parts.append("</feed>\n")
    return "\n".join(p for p in parts if p)
