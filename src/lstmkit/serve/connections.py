"""Connection-level limits that uvicorn lacks: a cap on open connections, a deadline and a size cap for the
request line and headers.

uvicorn's own settings cover the rest (``server_config``): the keep-alive timeout, the trust of proxy headers,
which is off unless ``--forwarded-allow-ips`` names the proxy, and the WebSocket protocol of ``/v1/stream``
(its message size limit, keep-alive pings, no compression).

HTTP/1.1 is parsed by httptools (llhttp, the parser of Node.js) when it is installed, as it is with lstmkit,
else by h11. httptools with uvloop's event loop halves the server's CPU per request against h11 on asyncio's
loop (BENCHMARKS.md). Both protocols get the same three additions (``ConnectionGuard``):

- beyond ``--max-connections`` open connections, a new one is answered 503 and closed at once, so a flood of
  idle connections cannot use up the process's file descriptors (and ``/healthz`` keeps answering);
- a request's line and headers must arrive within ``--header-timeout`` seconds of the connection opening (or
  of the previous response), else the connection is closed: a client sending one header line every few
  seconds no longer holds it forever;
- the request line and headers may take at most ``MAX_HEADER_BYTES`` (16 KiB): a longer head is answered
  431 (httptools) or 400 (h11, its own limit) and the connection closed, before it is held whole.

``RateLimitedLogFilter`` lets through at most a few records per message and logger per interval, so a flood
cannot fill the disk with the same warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from lstmkit.serve.options import ServeOptions

try:  # the faster parser; lstmkit depends on it, but a bare install of uvicorn without it still serves
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools missing
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

__all__ = [
    "HTTP_PARSERS",
    "MAX_HEADER_BYTES",
    "ConnectionGuard",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "RateLimitedLogFilter",
    "install_log_rate_limit",
    "server_config",
]

log = logging.getLogger(__name__)

#: The most bytes a request's line and headers may take.
MAX_HEADER_BYTES = 16 * 1024


class ConnectionGuard:
    """The connection cap, the header deadline and the header size cap (see the module), mixed in before one of
    uvicorn's HTTP protocols, which tells whether the current request's headers are complete
    (``_headers_complete``)."""

    options: ServeOptions = ServeOptions()
    _header_timer: asyncio.TimerHandle | None = None
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.options.max_connections:
            self.transport = transport
            self._refuse(b"503 Service Unavailable", f"server busy: {len(self.connections)} connections are open "
                         f"(--max-connections {self.options.max_connections}); retry", b"retry-after: 1\r\n")
            log.warning("refused a connection: %d are open (--max-connections)", len(self.connections))
            return
        super().connection_made(transport)  # type: ignore[misc]
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._refused:
            return
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and self._headers_complete():
            self._cancel_header_timer()

    def pause_writing(self) -> None:
        if not self._refused:
            super().pause_writing()  # type: ignore[misc]

    def resume_writing(self) -> None:
        if not self._refused:
            super().resume_writing()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and not self._headers_complete():
            self._start_header_timer()  # the next request's headers, on a kept-alive connection

    def _headers_complete(self) -> bool:
        """Whether the current request's line and headers have all arrived."""
        raise NotImplementedError

    def _refuse(self, status: bytes, message: str, headers: bytes = b"") -> None:
        """Answer ``{"error": message}`` with ``status`` straight on the transport, close the connection, and
        ignore whatever else arrives on it."""
        body = json.dumps({"error": message}).encode()
        self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + headers
                             + b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.close()
        self._refused = True

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        if self.options.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.options.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._headers_complete():
            return
        log.info("closed a connection from %s: no complete request headers within %g s (--header-timeout)",
                 self.client[0] if self.client else "unknown", self.options.header_timeout)
        self.transport.close()


class GuardedH11Protocol(ConnectionGuard, H11Protocol):
    """uvicorn's h11 protocol with the guard; h11 itself caps the head (``h11_max_incomplete_event_size``).

    A request with both ``Transfer-Encoding`` and ``Content-Length`` is a 400 and closes the connection, as
    llhttp does: h11 reads such a body as chunked and keeps the connection open, so a proxy that framed it by
    its Content-Length would see the bytes after the chunks as the next request (request smuggling; RFC 9112
    section 6.1 asks a server that reads such a request at all to close the connection after it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        next_event = self.conn.next_event

        def next_unambiguous_event() -> Any:
            event = next_event()
            if type(event) is h11.Request:
                names = {name.lower() for name, _ in event.headers}
                if b"transfer-encoding" in names and b"content-length" in names:
                    raise h11.RemoteProtocolError("both Transfer-Encoding and Content-Length")
            return event

        self.conn.next_event = next_unambiguous_event  # type: ignore[method-assign]

    def _headers_complete(self) -> bool:
        return self.conn.their_state is not h11.IDLE


if HttpToolsProtocol is not None:

    class GuardedHttpToolsProtocol(ConnectionGuard, HttpToolsProtocol):
        """uvicorn's httptools protocol with the guard, and the header size cap, which llhttp lacks: the bytes
        fed to the parser since the request began are counted until its headers are complete."""

        _head_bytes = 0  # bytes of the current head fed to the parser so far
        _in_head = True  # whether the current request's line and headers are still to come (or coming)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                room = MAX_HEADER_BYTES - self._head_bytes
                if len(data) <= room:
                    self._head_bytes += len(data)
                else:  # feed what the cap allows: the head must end within it
                    super().data_received(data[:room])
                    if self.transport.is_closing() or self.transport.get_protocol() is not self:
                        return  # a bad request (answered 400) or an upgrade to a WebSocket
                    if self._in_head:
                        self._refuse_large_head()
                        return
                    data = data[room:]  # the body, and maybe pipelined requests (bounded by one read)
            super().data_received(data)

        def _refuse_large_head(self) -> None:
            self._refuse(b"431 Request Header Fields Too Large",
                         f"request line and headers: more than {MAX_HEADER_BYTES} bytes")
            log.info("closed a connection from %s: request line and headers over %d bytes",
                     self.client[0] if self.client else "unknown", MAX_HEADER_BYTES)

        def on_headers_complete(self) -> None:
            self._in_head, self._head_bytes = False, 0
            self._cancel_header_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0  # a pipelined request's bytes count from here

        def _headers_complete(self) -> bool:
            return not self._in_head

else:  # pragma: no cover - httptools missing
    GuardedHttpToolsProtocol = None  # type: ignore[assignment,misc]


#: The guarded protocol of each HTTP parser, by the name ``server_config(http=...)`` takes.
HTTP_PARSERS: dict[str, type[ConnectionGuard]] = {"h11": GuardedH11Protocol}
if GuardedHttpToolsProtocol is not None:
    HTTP_PARSERS["httptools"] = GuardedHttpToolsProtocol


def guarded_protocol(options: ServeOptions, http: str = "auto") -> type[ConnectionGuard]:
    """The guarded protocol of the parser ``http`` ("httptools", "h11", or "auto": httptools where installed),
    bound to ``options``' limits."""
    name = ("httptools" if "httptools" in HTTP_PARSERS else "h11") if http == "auto" else http
    if name not in HTTP_PARSERS:
        raise ValueError(f"server_config: http: expected one of {sorted(HTTP_PARSERS)} or 'auto', got {http!r}")
    base = HTTP_PARSERS[name]
    return type(base.__name__, (base,), {"options": options})


class RateLimitedLogFilter(logging.Filter):
    """At most ``burst`` records per (logger, message template) every ``interval`` seconds; the count of the
    ones dropped is added to the next record let through."""

    def __init__(self, burst: int = 5, interval: float = 10.0, max_keys: int = 1024) -> None:
        super().__init__()
        self.burst, self.interval, self.max_keys = burst, interval, max_keys
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            dropped = 0 if window is None else int(window[2])
            if len(self._windows) >= self.max_keys:
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} [{dropped} similar messages were dropped]"
            return True
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False


_FILTERED_LOGGERS = ("asyncio", "uvicorn.error", "uvicorn", "lstmkit.serve", "lstmkit.serve.app",
                     "lstmkit.serve.guard", "lstmkit.serve.connections", "lstmkit.serve.batcher",
                     "lstmkit.serve.sessions")


def install_log_rate_limit(burst: int = 5, interval: float = 10.0) -> RateLimitedLogFilter:
    """Rate-limit the records of the loggers a flood can trigger (asyncio's accept errors, uvicorn's, ours)."""
    shared = RateLimitedLogFilter(burst, interval)
    for name in _FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLogFilter) for f in logger.filters):
            logger.addFilter(shared)
    return shared


def _ws_protocol() -> str:
    """uvicorn's sans-I/O protocol on the websockets package where it has one (0.35 and later), else the older one
    on the same package (whose reads also stop while messages wait, and whose sends wait for the socket)."""
    from uvicorn.config import WS_PROTOCOLS

    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"


def server_config(app: Any, options: ServeOptions, host: str = "127.0.0.1", port: int = 8000, http: str = "auto",
                  **kwargs: Any) -> Any:
    """The ``uvicorn.Config`` of ``lstmkit serve``: its limits, timeouts and proxy trust from ``options``; the
    HTTP parser ``http`` (see ``guarded_protocol``) and uvicorn's event loop choice ("auto": uvloop where
    installed)."""
    import uvicorn

    forwarded = options.forwarded_allow_ips
    ws_protocol = _ws_protocol()
    settings: dict[str, Any] = dict(
        host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5,
        http=guarded_protocol(options, http), loop="auto",
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,  # request line and headers, for h11
        # /v1/stream: the websockets package's sans-I/O protocol (it pauses reading while the app has a message
        # to take, and its sends wait while the transport's buffer is full: lstmkit.serve.websocket relies on
        # both for back-pressure). A message over --max-payload-bytes closes the connection (1009) before it is
        # held whole; no compression (it costs CPU, and a small compressed message can inflate to a big one);
        # a ping every 20 s, and a peer that does not answer within 20 s is disconnected.
        ws=ws_protocol, ws_max_size=options.max_payload_bytes, ws_per_message_deflate=False,
        ws_ping_interval=20.0, ws_ping_timeout=20.0,
        # Trust X-Forwarded-For only from the proxy named by --forwarded-allow-ips; uvicorn's default trusts
        # it from 127.0.0.1, so any local client could pose as any address (and escape the rate limit).
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or "",
    )
    settings.update(kwargs)
    return uvicorn.Config(app, **settings)
