"""The server's limits, batching and security settings, each a flag of ``lstmkit serve``."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field, fields

from lstmkit.errors import ConfigError, LstmkitError

__all__ = ["ServeOptions", "is_loopback"]

MIN_API_KEY_LENGTH = 16
_MAXIMA = {"session_ttl": 365 * 86400.0, "request_timeout": 86400.0, "header_timeout": 3600.0,
           "body_timeout": 3600.0, "batch_wait_ms": 10_000.0, "rate_limit": 1e6, "workers": 1024}
"""Upper bounds beyond the default 1e9 (a timer of 1e300 s overflows the event loop)."""
_NOT_NUMBERS = {"api_key", "insecure", "access_log", "forwarded_allow_ips"}
_ZERO_MEANS_OFF = {"batch_wait_ms", "rate_limit", "request_timeout", "header_timeout", "body_timeout"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) can only be reached from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any address


@dataclass(frozen=True)
class ServeOptions:
    """Limits, batching and security of ``lstmkit serve`` (the flag of each is its name with dashes).

    Secure by default: the server listens on 127.0.0.1 only; every other setting below bounds what one
    client can make the server do. ``check_bind`` refuses a non-loopback address without an ``api_key``
    unless ``insecure`` is set.
    """

    max_batch: int = 64
    """Most sequences in one model call, and so in one ``/v1/predict`` request; also the most sessions
    whose steps go into one step call."""
    batch_wait_ms: float = 2.0
    """How long a model call may wait for requests that are still being read (never when none are)."""
    max_sequence_length: int = 1024
    """Most steps in one sequence of ``/v1/predict``, and in one ``/step`` request."""
    max_payload_bytes: int = 1 << 20
    """Largest request body, checked on Content-Length and on the bytes received, before any parsing; 413."""
    session_ttl: float = 300.0
    """Seconds a session may stay idle before it expires."""
    max_sessions: int = 10_000
    """Most open sessions; one more gets 429."""
    max_queue: int = 4096
    """Most sequences (predict) or step requests waiting for the model; beyond that requests get 503."""
    max_concurrency: int = 256
    """Most requests in progress at once (``/healthz`` aside), counted from the moment a request's body is in;
    one more gets 503. Bodies still arriving hold no slot: they are bounded by ``max_connections`` times
    ``max_payload_bytes`` and by ``body_timeout``, so slow senders cannot lock out ready requests."""
    request_timeout: float = 30.0
    """Seconds a request may take, body reading included; then 504 (0: no limit)."""
    rate_limit: float = 0.0
    """Requests per second allowed to each client address, a token bucket (0, the default: no limit);
    beyond it 429 with Retry-After. ``/healthz`` is never limited."""
    rate_burst: int = 20
    """Requests a client may send at once before ``rate_limit`` applies (the bucket's size)."""
    header_timeout: float = 10.0
    """Seconds for a request's line and headers to arrive, from the connection's opening or the previous
    response; then the connection is closed (0: no limit)."""
    body_timeout: float = 10.0
    """Seconds for a request's whole body to arrive once its headers are in; then 408. Requests count
    against ``max_concurrency`` only once their body is in (0: no limit)."""
    max_connections: int = 1000
    """Most open connections; one more is answered 503 and closed at once (the file descriptors stay
    bounded). Lowered to fit the process's open-file limit."""
    stream_max_pending: int = 16
    """Most messages of one ``/v1/stream`` WebSocket between their arrival and the sending of their answer;
    at the limit the server stops reading that connection until answers have gone out, so a client that
    sends without reading holds at most this many messages (and their answers) in server memory."""
    workers: int = 1
    """Server processes sharing the address (``lstmkit.serve.workers``). Every other limit here is per worker;
    HTTP sessions need one worker (``POST /v1/sessions`` answers 409 otherwise), ``/v1/stream`` works with any."""
    forwarded_allow_ips: str | None = None
    """Comma-separated addresses of the reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto``
    headers are trusted (uvicorn's ``forwarded_allow_ips``; ``*`` trusts every peer). None, the default: no
    proxy header is trusted, so the rate limit and the access log see each connection's own address."""
    api_key: str | None = field(default=None, repr=False)
    """When set, every request but ``/healthz`` needs ``Authorization: Bearer KEY`` (else 401)."""
    insecure: bool = False
    """Allow a non-loopback address without an ``api_key``."""
    access_log: bool = False
    """Log one JSON line per request (method, path, status, duration, client; never bodies or headers)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in _NOT_NUMBERS:
                continue
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    value < 0 or (value == 0 and f.name not in _ZERO_MEANS_OFF)):
                raise ConfigError(f"serve {flag}: expected a positive number, got {value!r}")
            if f.type in (int, "int") and not isinstance(value, int):
                raise ConfigError(f"serve {flag}: expected a positive integer, got {value!r}")
            if value > _MAXIMA.get(f.name, 1e9):
                raise ConfigError(f"serve {flag}: expected at most {_MAXIMA.get(f.name, 1e9):g}, got {value!r}")
        forwarded = self.forwarded_allow_ips
        if forwarded is not None:
            for address in str(forwarded).split(","):
                address = address.strip()
                if address == "*":  # uvicorn's "trust every peer": only behind a proxy that all traffic passes
                    continue
                try:
                    ipaddress.ip_network(address, strict=False)
                except ValueError:
                    raise ConfigError(f"serve --forwarded-allow-ips: expected proxy IP addresses or networks, "
                                      f"comma-separated, got {address!r}") from None
        key = self.api_key
        if key is not None and (not isinstance(key, str) or len(key) < MIN_API_KEY_LENGTH
                                or not key.isascii() or not key.isprintable() or " " in key):
            shown = f"{len(key)} characters" if isinstance(key, str) else repr(type(key).__name__)
            raise ConfigError(f"serve --api-key: expected at least {MIN_API_KEY_LENGTH} printable ASCII "
                              f"characters without spaces, got {shown}")

    def check_bind(self, host: str) -> None:
        """Refuse to listen on a non-loopback ``host`` without an API key, unless ``insecure`` is set."""
        if is_loopback(host) or self.api_key is not None or self.insecure:
            return
        raise LstmkitError(f"serve --host {host}: refusing to listen on a non-loopback address without an API "
                           "key; set LSTMKIT_API_KEY (or pass --api-key KEY), or pass --insecure to serve "
                           "anyone who can reach it")
