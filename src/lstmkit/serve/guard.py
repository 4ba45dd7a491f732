"""ASGI middleware that bounds and guards every request before the app sees it, and the access log.

``GuardMiddleware`` applies, in this order (``/healthz`` skips the first three, so probes always answer):

=======================  ======  ==================================================================================
check                    status  setting
=======================  ======  ==================================================================================
rate per client address  429     ``--rate-limit`` requests/s, ``--rate-burst`` at once (a token bucket); Retry-After
API key                  401     ``--api-key`` / ``LSTMKIT_API_KEY``: ``Authorization: Bearer KEY``
body size                413     ``--max-payload-bytes``: Content-Length, then the bytes as they arrive
body time                408     ``--body-timeout``: the whole body, read before a slot is taken
requests in progress     503     ``--max-concurrency``, counted once the body is in; Retry-After
time                     504     ``--request-timeout``
=======================  ======  ==================================================================================

``AccessLogMiddleware`` logs one JSON line per request on the ``lstmkit.serve.access`` logger: never a
body, a header or a query string.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from collections import OrderedDict
from typing import Any, Callable

from lstmkit.serve.batcher import ARRIVAL_KEY, within
from lstmkit.serve.metrics import StatusRecorder
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError

__all__ = ["AccessLogMiddleware", "GuardMiddleware", "InternalErrorMiddleware", "RateLimiter", "api_key_problem"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("lstmkit.serve.access")

OPEN_PATHS = frozenset({"/healthz"})


def client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def send_error(send: Callable, status: int, message: str,
                     headers: tuple[tuple[bytes, bytes], ...] | list = ()) -> None:
    """Answer ``{"error": message}`` with ``status`` straight from the middleware."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, then ``rate`` per second.

    At most ``max_clients`` buckets are kept (the least recently seen go first), so memory stays bounded
    whatever the number of client addresses.
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 65_536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    def take(self, client: str) -> float:
        """Take one token of ``client``'s bucket: 0.0 when allowed, else the seconds until one is there."""
        now = self.clock()
        previous = self._buckets.pop(client, None)
        tokens = self.burst if previous is None else min(self.burst, previous[0] + (now - previous[1]) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class GuardMiddleware:
    """Rate limit, API key, concurrency, body size and time limits of every HTTP request (see the module)."""

    def __init__(self, app: Any, options: ServeOptions, arrival_window: Callable[[str], Any] | None = None,
                 limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.options = options
        self.arrival_window = arrival_window
        # ``limiter``: one shared with the WebSocket endpoint, so a client's HTTP requests and stream messages
        # draw on one bucket.
        self.limiter = limiter or (RateLimiter(options.rate_limit, options.rate_burst) if options.rate_limit > 0
                                   else None)
        self.key = None if options.api_key is None else options.api_key.encode()
        self.in_progress = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        open_path = scope["path"] in OPEN_PATHS
        if not open_path:
            if self.limiter is not None:
                wait = self.limiter.take(client_address(scope))
                if wait > 0:
                    retry = max(1, math.ceil(wait))
                    await send_error(send, 429, f"too many requests: more than {self.options.rate_limit:g} per "
                                                f"second from this client (--rate-limit); retry after {retry} s",
                                     [(b"retry-after", str(retry).encode())])
                    return
            if self.key is not None:
                problem = self._key_problem(scope)
                if problem is not None:
                    await send_error(send, 401, f"{scope['method']} {scope['path']}: {problem}",
                                     [(b"www-authenticate", b'Bearer realm="lstmkit"')])
                    return
        limit = self.options.max_payload_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(send, 400, f"Content-Length: expected an integer, got {declared.decode('latin-1')!r}")
                return
            if int(declared) > limit:
                await send_error(send, 413, f"request body: expected at most {limit} bytes (--max-payload-bytes), "
                                            f"got {int(declared)}")
                return
        # The whole body first (bounded in size and time), then a slot: clients trickling their bodies hold
        # connections, never the --max-concurrency slots of requests that are ready. Meanwhile the request
        # counts as arriving for the batch it will join; its handler ends that (ARRIVAL_KEY), or the finally below.
        window = self.arrival_window(scope["path"]) if self.arrival_window is not None else None
        end_arrival = window.begin() if window is not None else (lambda: None)
        scope[ARRIVAL_KEY] = end_arrival
        try:
            await self._read_and_call(scope, receive, send, open_path, limit)
        finally:
            end_arrival()

    async def _read_and_call(self, scope: Any, receive: Any, send: Any, open_path: bool, limit: int) -> None:
        try:
            messages = await within(_read_body(receive, limit), self.options.body_timeout)
        except asyncio.TimeoutError:
            await send_error(send, 408, f"request body: not received within {self.options.body_timeout:g} s "
                                        "(--body-timeout)", [(b"connection", b"close")])
            return
        except ApiError as exc:
            await send_error(send, exc.status, exc.message, [(b"connection", b"close")])
            return
        if messages is None:  # the client went away
            return
        if not open_path and self.in_progress >= self.options.max_concurrency:
            await send_error(send, 503, f"server busy: {self.in_progress} requests in progress "
                                        f"(--max-concurrency {self.options.max_concurrency}); retry",
                             [(b"retry-after", b"1")])
            return

        async def replay() -> Any:
            if messages:
                return messages.pop(0)
            return await receive()  # after the body: only http.disconnect

        response = StatusRecorder(send)
        if not open_path:
            self.in_progress += 1
        try:
            await within(self.app(scope, replay, response), self.options.request_timeout)
        except asyncio.TimeoutError:
            log.warning("%s %s: timed out after %g s", scope["method"], scope["path"], self.options.request_timeout)
            if not response.started:
                await send_error(send, 504, f"request timed out after {self.options.request_timeout:g} s "
                                            "(--request-timeout)")
        finally:
            if not open_path:
                self.in_progress -= 1

    def _key_problem(self, scope: Any) -> str | None:
        return api_key_problem(scope, self.key)


def api_key_problem(scope: Any, key: bytes) -> str | None:
    """Why the API key of a request (or WebSocket handshake) ``scope`` is refused, or None when it is ``key``."""
    value = _header(scope, b"authorization")
    if value is None:
        return "expected the header 'Authorization: Bearer KEY', got none"
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return "expected the header 'Authorization: Bearer KEY', got another scheme"
    if not hmac.compare_digest(token.strip(), key):
        return "invalid API key"
    return None


async def _read_body(receive: Callable, limit: int) -> list[dict[str, Any]] | None:
    """The request's body as one ``http.request`` message (413 beyond ``limit`` bytes); None if the client left."""
    chunks, received = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        if message["type"] != "http.request":
            continue
        body = message.get("body", b"")
        received += len(body)
        if received > limit:
            raise ApiError(413, f"request body: expected at most {limit} bytes (--max-payload-bytes), got more")
        chunks.append(body)
        if not message.get("more_body", False):
            return [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]


def _header(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class AccessLogMiddleware:
    """One JSON line per request: time, method, path, status, duration_ms, client."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        response = StatusRecorder(send)
        try:
            await self.app(scope, receive, response)
        finally:
            access_log.info(json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "method": scope["method"], "path": scope["path"],
                "status": response.status, "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                "client": client_address(scope)}))


class InternalErrorMiddleware:
    """An unexpected exception becomes a 500 ``{"error": ...}`` and one log line (its traceback at DEBUG); it is
    not re-raised, so the server neither logs a second traceback nor drops the keep-alive connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = StatusRecorder(send)
        try:
            await self.app(scope, receive, response)
        except Exception as exc:  # noqa: BLE001 - the last resort: answered, logged once
            log.error("%s %s: internal error %s: %s", scope["method"], scope["path"], type(exc).__name__,
                      str(exc).splitlines()[0][:200] if str(exc) else "")
            log.debug("traceback of the internal error", exc_info=True)
            if not response.started:
                await send_error(send, 500, f"internal error: {type(exc).__name__}")
