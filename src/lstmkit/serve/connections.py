"""Connection-level limits that uvicorn lacks: a cap on open connections and a deadline for the headers.

uvicorn's own settings cover the rest (``server_config``): the keep-alive timeout, the header size limit of
h11, the trust of proxy headers, which is off unless ``--forwarded-allow-ips`` names the proxy, and the
WebSocket protocol of ``/v1/stream`` (its message size limit, keep-alive pings, no compression).

``GuardedH11Protocol`` is uvicorn's h11 protocol with two additions:

- beyond ``--max-connections`` open connections, a new one is answered 503 and closed at once, so a flood of
  idle connections cannot use up the process's file descriptors (and ``/healthz`` keeps answering);
- a request's line and headers must arrive within ``--header-timeout`` seconds of the connection opening (or
  of the previous response), else the connection is closed: a client sending one header line every few
  seconds no longer holds it forever.

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

__all__ = ["GuardedH11Protocol", "RateLimitedLogFilter", "server_config", "install_log_rate_limit"]

log = logging.getLogger(__name__)


def guarded_protocol(options: ServeOptions) -> type[H11Protocol]:
    """``GuardedH11Protocol`` bound to ``options``' limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"options": options})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a cap on open connections and a deadline for headers (see the module)."""

    options: ServeOptions = ServeOptions()
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.options.max_connections:
            body = json.dumps({"error": f"server busy: {len(self.connections)} connections are open "
                                        f"(--max-connections {self.options.max_connections}); retry"}).encode()
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                            b"retry-after: 1\r\nconnection: close\r\ncontent-length: " + str(len(body)).encode()
                            + b"\r\n\r\n" + body)
            transport.close()
            self.transport = transport
            self._refused = True
            log.warning("refused a connection: %d are open (--max-connections)", len(self.connections))
            return
        self._refused = False
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if getattr(self, "_refused", False):
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if getattr(self, "_refused", False):
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._cancel_header_timer()

    def pause_writing(self) -> None:
        if not getattr(self, "_refused", False):
            super().pause_writing()

    def resume_writing(self) -> None:
        if not getattr(self, "_refused", False):
            super().resume_writing()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._start_header_timer()  # the next request's headers, on a kept-alive connection

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
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("closed a connection from %s: no complete request headers within %g s (--header-timeout)",
                 self.client[0] if self.client else "unknown", self.options.header_timeout)
        self.transport.close()


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


def server_config(app: Any, options: ServeOptions, host: str = "127.0.0.1", port: int = 8000,
                  **kwargs: Any) -> Any:
    """The ``uvicorn.Config`` of ``lstmkit serve``: its limits, timeouts and proxy trust from ``options``."""
    import uvicorn

    forwarded = options.forwarded_allow_ips
    ws_protocol = _ws_protocol()
    settings: dict[str, Any] = dict(
        host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5,
        http=guarded_protocol(options),
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,  # request line and headers
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
