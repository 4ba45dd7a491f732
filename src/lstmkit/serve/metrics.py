"""Prometheus metrics of one server (its own registry, so that several apps can live in one process)."""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_ROUTES = [
    (re.compile(r"^/v1/predict$"), "/v1/predict"),
    (re.compile(r"^/v1/sessions$"), "/v1/sessions"),
    (re.compile(r"^/v1/sessions/[^/]+/step$"), "/v1/sessions/{id}/step"),
    (re.compile(r"^/v1/sessions/[^/]+$"), "/v1/sessions/{id}"),
    (re.compile(r"^/(healthz|metrics|openapi\.json|docs)$"), None),
    (re.compile(r"^/v1/(translate|frames)$"), None),  # seq2seq and frames (lstmkit.serve.endpoints_app)
]


def route_label(path: str) -> str:
    """The route template of ``path``, so that session ids never become label values."""
    for pattern, label in _ROUTES:
        if pattern.match(path):
            return label or path
    return "other"


class Metrics:
    """Request counts and latencies, batch sizes, model-call times and sessions."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise here
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("lstmkit_requests", "HTTP requests by route, method and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("lstmkit_request_duration_seconds", "HTTP request latency by route",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.predict_batch = Histogram("lstmkit_predict_batch_size", "Sequences per predict model call",
                                       buckets=_SIZE_BUCKETS, registry=r)
        self.step_batch = Histogram("lstmkit_step_batch_size", "Sessions per step model call",
                                    buckets=_SIZE_BUCKETS, registry=r)
        self.model_seconds = Histogram("lstmkit_model_call_duration_seconds", "Model call time by kind",
                                       ["kind"], buckets=_LATENCY_BUCKETS, registry=r)
        self.sessions_active = Gauge("lstmkit_sessions_active", "Open streaming sessions", registry=r)
        self.sessions_opened = Counter("lstmkit_sessions_opened", "Sessions opened", registry=r)
        self.sessions_closed = Counter("lstmkit_sessions_closed", "Sessions closed, by reason", ["reason"],
                                       registry=r)
        self.session_steps = Counter("lstmkit_session_steps", "Time steps run for sessions", registry=r)
        self.queue_depth = Gauge("lstmkit_queue_depth", "Work waiting for the model, by kind", ["kind"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StatusRecorder:
    """An ASGI ``send`` that passes messages on and remembers the response status (500 until one is sent);
    ``started`` says whether the response has begun (after which no error response can replace it)."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.status = 500
        self.started = False

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
        await self.send(message)


class MetricsMiddleware:
    """Counts every HTTP request and observes its latency (a plain ASGI middleware: no per-request task)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Label children looked up once per (route, method, status), not per request (a dict hit instead of a
        # lock and a label check each time).
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        response = StatusRecorder(send)
        try:
            await self.app(scope, receive, response)
        finally:
            endpoint = route_label(scope["path"])
            key = (endpoint, scope["method"], response.status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self.metrics.requests.labels(endpoint, key[1], str(key[2]))
                if len(self._counters) < 256:  # methods come from clients: the cache stays bounded
                    self._counters[key] = counter
            counter.inc()
            latency = self._latencies.get(endpoint)
            if latency is None:
                latency = self._latencies[endpoint] = self.metrics.latency.labels(endpoint)
            latency.observe(time.perf_counter() - start)
