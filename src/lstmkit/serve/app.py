"""The HTTP service (FastAPI): batch prediction, streaming sessions, health and metrics.

=========================  ===================================================================================
``POST /v1/predict``       ``{"inputs": [[[F numbers], ...steps], ...sequences]}`` -> one prediction per sequence;
                           the other tasks read and answer as ``lstmkit.serve.task_io`` says (texts for text
                           models; ``/v1/forecast`` for a forecaster, ``/v1/generate`` for a char-lm instead)
``POST /v1/sessions``      open a streaming session -> ``{"id": ...}`` (201)
``POST /v1/sessions/{id}/step``  ``{"inputs": [[F numbers], ...steps]}`` -> the output after every step
``GET /v1/sessions/{id}``  steps so far and idle seconds
``DELETE /v1/sessions/{id}``  close the session
``WebSocket /v1/stream``   many sessions on one connection, JSON or binary float32 (``lstmkit.serve.websocket``)
``GET /healthz``           ``{"status": "ok", ...}``
``GET /metrics``           Prometheus text format
``GET /openapi.json``      the schema (no ``/docs`` page: FastAPI's loads swagger-ui from a CDN at a floating
                           version; open the schema in a viewer you trust)
=========================  ===================================================================================

Inputs are raw values, as the data source gives them; the server standardises them as in training. Every
error is ``{"error": "..."}`` with a 4xx or 5xx status (see ``lstmkit.serve.validation`` for which). Every
request first passes ``lstmkit.serve.guard``: rate limit, API key, concurrency, body size and time limits.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.routing import WebSocketRoute

import lstmkit
from lstmkit.serve.backends import Backend
from lstmkit.serve.batcher import MicroBatcher
from lstmkit.serve.hot_paths import Handlers, HotPaths
from lstmkit.serve.json_codec import Formatter, dumps
from lstmkit.serve.error_handlers import add_error_handlers
from lstmkit.serve.guard import AccessLogMiddleware, GuardMiddleware, InternalErrorMiddleware, RateLimiter
from lstmkit.serve.metrics import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.sessions import SessionStore, StepBatcher
from lstmkit.serve.validation import ApiError, parse_json, parse_predict, parse_steps
from lstmkit.serve.websocket import STREAM_PATH, StreamEndpoint

__all__ = ["create_app"]

log = logging.getLogger(__name__)


# ---- schemas, for /openapi.json (bodies are parsed and checked by hand, for speed and clear errors) ----


class PredictRequest(BaseModel):
    inputs: list[list[list[float]]] | None = Field(
        default=None, description="Sequences (any lengths), each a list of steps of F numbers")
    texts: list[str] | None = Field(default=None, description="For a text classifier instead of inputs: raw texts")


class Prediction(BaseModel):
    label: str
    probability: float
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class StepRequest(BaseModel):
    inputs: list[list[float]] = Field(description="One or more time steps of this stream, each F numbers")


class StepOutput(Prediction):
    step: int = Field(description="0-based index of the step in the session")


class StepResponse(BaseModel):
    id: str
    steps: int = Field(description="Steps the session has taken so far")
    outputs: list[StepOutput]


class SessionInfo(BaseModel):
    id: str
    steps: int
    idle_seconds: float
    ttl_seconds: float


class ErrorResponse(BaseModel):
    error: str


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


_SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "The id that POST /v1/sessions returned"}
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 429, 503, 504)}


# FastAPI >= 0.16x checks on every request whether OpenTelemetry is configured (a few % of a request's time
# here); the service reports through its own Prometheus metrics, so the check is turned off where it exists.
_NO_TELEMETRY = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                 if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(backend: Backend, options: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app serving ``backend`` with ``options`` (limits and batching)."""
    if hasattr(backend, "add_routes"):  # a task with endpoints of its own (lstmkit.serve.endpoints_app)
        from lstmkit.serve.endpoints_app import create_endpoints_app

        return create_endpoints_app(backend, options)
    options = options or ServeOptions()
    info = backend.info
    metrics = Metrics()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One worker thread runs every model call, so predict and step batches never compete for the cores.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-model",
                                      initializer=backend.thread_init)
        store = SessionStore(info.num_layers, info.state_sizes, options, metrics)
        predictor = MicroBatcher(backend, executor, options, metrics)
        stepper = StepBatcher(backend, store, executor, options, metrics)
        predictor.start()
        stepper.start()

        async def reap_forever() -> None:
            while True:
                await asyncio.sleep(min(1.0, options.session_ttl / 4))
                store.reap()

        reaper = asyncio.get_running_loop().create_task(reap_forever(), name="lstmkit-session-reaper")
        state.update(store=store, predictor=predictor, stepper=stepper)
        gc.collect()
        gc.freeze()  # the model and the libraries stay: later collections need not walk them again
        log.info("serving %s with the %s backend", info.source, backend.name)
        try:
            yield
        finally:
            reaper.cancel()
            await predictor.stop()
            await stepper.stop()
            executor.shutdown(wait=True)

    # No /docs or /redoc: FastAPI's pages pull swagger-ui / redoc scripts from a CDN at a floating major version,
    # code that the server would hand to every browser that opens them.
    app = FastAPI(title="lstmkit", version=lstmkit.__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="LSTM models: batch prediction and streaming sessions.", **_NO_TELEMETRY)
    labels = info.label_names
    formatter = Formatter(labels)

    # A task other than the classifier reads and answers its requests as its declared ports say
    # (lstmkit.serve.task_io), and may add its own endpoint (/v1/forecast, /v1/generate) instead of /v1/predict.
    task_io = getattr(backend, "io", None)

    async def predict_answer(scope: dict[str, Any], raw: bytes) -> bytes:
        predictor = state["predictor"]
        with predictor.arrival(scope):
            body = parse_json(raw)
            if task_io is not None:
                parsed = task_io.parse_predict(body, options)
            else:
                sequences = parse_predict(body, info, options)
        if task_io is not None:
            return dumps(task_io.answer(await predictor.predict(parsed.sequences), parsed))
        probabilities = await predictor.predict(sequences)
        return dumps({"predictions": formatter.predictions(probabilities)})

    async def step_answer(scope: dict[str, Any], session_id: str, raw: bytes) -> bytes:
        store, stepper = state["store"], state["stepper"]
        with stepper.arrival(scope):
            store.get(session_id)
            body = parse_json(raw)
            x = parse_steps(body, info, options) if task_io is None else task_io.parse_step(body, options)
        session = store.get(session_id)  # it may have expired while the body arrived
        probabilities, first = await stepper.step(session, x)
        return dumps({"id": session.id, "steps": session.steps, "outputs": present_steps(probabilities, first)})

    def present_steps(rows: Any, first: int) -> list[dict[str, Any]]:
        """The outputs of a session's steps (K, C) from step ``first``, as its task answers them."""
        if task_io is None:
            return formatter.step_outputs(rows, first)
        return [{"step": first + t, **task_io.present_step(row)} for t, row in enumerate(rows)]

    # HotPaths, the innermost middleware (added first), answers these two without FastAPI's routing; their routes
    # below give the schema, and would answer the same through the same functions.
    serves_predict = task_io is None or task_io.verb == "predict"
    app.add_middleware(HotPaths, handlers=Handlers(predict_answer if serves_predict else None, step_answer))

    # The last added runs first: the access log sees every answer, the metrics count the guard's refusals too.
    app.add_middleware(InternalErrorMiddleware)
    def arrival_window(path: str) -> Any:
        """The batch window a request to ``path`` will join: the guard counts it as arriving from the first byte
        of its body, so the collector waits for requests whose bodies are still coming in."""
        if path == "/v1/predict" and "predictor" in state:
            return state["predictor"].window
        if path.startswith("/v1/sessions/") and path.endswith("/step") and "stepper" in state:
            return state["stepper"].window
        return None

    # One token bucket per client for HTTP requests and /v1/stream messages alike.
    limiter = RateLimiter(options.rate_limit, options.rate_burst) if options.rate_limit > 0 else None
    app.add_middleware(GuardMiddleware, options=options, arrival_window=arrival_window, limiter=limiter)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if options.access_log:
        app.add_middleware(AccessLogMiddleware)

    add_error_handlers(app)

    @app.get("/healthz", summary="Liveness and the model served")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "backend": backend.name,
            "model": info.source,
            "labels": labels,
            "input_size": info.input_size,
            "inputs": "texts" if info.texts else "numbers",
            "streaming": info.streaming_unsupported is None,
            "sessions": len(state["store"]) if "store" in state else 0,
        }

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def predict(request: Request) -> Response:
        return Response(await predict_answer(request.scope, await request.body()), media_type="application/json")

    if serves_predict:
        app.post("/v1/predict", summary="Predict for a batch of variable-length inputs", responses=_ERRORS,
                 response_model=PredictResponse if task_io is None else task_io.predict_response,
                 openapi_extra=_body(PredictRequest if task_io is None else task_io.predict_request))(predict)
    if task_io is not None:
        task_io.register_routes(app, state, options, backend)

    @app.post("/v1/sessions", summary="Open a streaming session", status_code=201, response_model=SessionInfo,
              responses=_ERRORS)
    async def open_session(request: Request) -> JSONResponse:
        if info.streaming_unsupported is not None:
            endpoint = "/v1/predict" if task_io is None else f"/v1/{task_io.verb}"
            raise ApiError(409, f"sessions are not supported for this model: {info.streaming_unsupported}; "
                                f"use {endpoint} with whole sequences")
        if options.workers > 1:
            raise ApiError(409, f"HTTP sessions need one server process, and this server runs {options.workers} "
                                "(--workers): a session's state lives in one of them, and the next request may "
                                "reach another. Stream over the WebSocket /v1/stream, whose connection stays with "
                                "one worker, or serve with --workers 1")
        session = state["store"].create()
        return JSONResponse(_session_info(session), status_code=201)

    def _session_info(session: Any) -> dict[str, Any]:
        idle = state["store"].clock() - session.last_used
        return {"id": session.id, "steps": session.steps, "idle_seconds": round(idle, 3),
                "ttl_seconds": options.session_ttl}

    @app.post("/v1/sessions/{session_id}/step", summary="Feed one or more steps; the output after each",
              response_model=StepResponse if task_io is None else task_io.step_response, responses=_ERRORS,
              openapi_extra={**_body(StepRequest if task_io is None else task_io.step_request),
                             "parameters": [_SESSION_ID]})
    async def step(request: Request) -> Response:
        answer = await step_answer(request.scope, request.path_params["session_id"], await request.body())
        return Response(answer, media_type="application/json")

    @app.get("/v1/sessions/{session_id}", summary="A session's step count and idle time", response_model=SessionInfo,
             responses=_ERRORS)
    async def session_info(session_id: str) -> JSONResponse:
        return JSONResponse(_session_info(state["store"].get(session_id)))

    # The WebSocket endpoint is a plain ASGI app (lstmkit.serve.websocket): no per-message framework layer.
    app.router.routes.append(WebSocketRoute(STREAM_PATH, StreamEndpoint(info, options, state, metrics, limiter,
                                                                      task_io=task_io, present_steps=present_steps)))

    @app.delete("/v1/sessions/{session_id}", summary="Close a session", responses=_ERRORS)
    async def close_session(session_id: str) -> JSONResponse:
        session = state["store"].close(session_id)
        return JSONResponse({"id": session.id, "deleted": True, "steps": session.steps})

    return app
