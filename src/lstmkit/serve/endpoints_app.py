"""The HTTP app of a task with endpoints of its own (seq2seq: ``/v1/translate``; frames: ``/v1/frames``).

The same guard, metrics, access log and error format as ``lstmkit.serve.app`` (``{"error": "..."}`` with a 4xx
or 5xx status), ``/healthz`` and ``/metrics``, and the task's routes, added by its backend
(``lstmkit.serve.seq2seq_frames_backends``). Every model call runs in one worker thread, as in ``lstmkit.serve.app``.
``/v1/predict`` and ``/v1/sessions`` answer 404 naming the task's endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

import lstmkit
from lstmkit.serve.error_handlers import add_error_handlers
from lstmkit.serve.guard import (
    AccessLogMiddleware,
    GuardMiddleware,
    InternalErrorMiddleware,
)
from lstmkit.serve.metrics import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError

__all__ = ["ENDPOINTS", "create_endpoints_app"]

log = logging.getLogger(__name__)

#: task -> its endpoint, for /healthz and the 404 of /v1/predict
ENDPOINTS = {"seq2seq": "/v1/translate", "frames": "/v1/frames"}


def create_endpoints_app(backend: Any, options: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app serving a task backend (one with ``add_routes``) with ``options``'s limits."""
    options = options or ServeOptions()
    info = backend.info
    metrics = Metrics()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-model",
                                      initializer=backend.thread_init)
        state["executor"] = executor
        log.info("serving %s (%s) with the %s backend", info.source, info.task, backend.name)
        try:
            yield
        finally:
            executor.shutdown(wait=True)

    async def call(function: Any, *args: Any) -> Any:
        """``function(*args)`` in the model's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(state["executor"], function, *args)

    app = FastAPI(title="lstmkit", version=lstmkit.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"A {info.task} model: {ENDPOINTS[info.task]}.")
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(GuardMiddleware, options=options)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if options.access_log:
        app.add_middleware(AccessLogMiddleware)

    add_error_handlers(app)

    @app.get("/healthz", summary="Liveness and the model served")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "backend": backend.name, "model": info.source, "task": info.task,
                "endpoint": ENDPOINTS[info.task], **info.details}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.api_route("/v1/predict", methods=["POST"], include_in_schema=False)
    @app.api_route("/v1/sessions", methods=["POST"], include_in_schema=False)
    async def not_this_task(request: Request) -> JSONResponse:
        raise ApiError(404, f"{request.url.path}: a {info.task} model answers POST {ENDPOINTS[info.task]} "
                            "(see /openapi.json)")

    backend.add_routes(app, options, call)
    return app
