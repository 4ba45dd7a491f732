"""The two busy endpoints, ``POST /v1/predict`` and ``POST /v1/sessions/{id}/step``, answered without FastAPI.

Under load the model is a small part of a request's cost: a py-spy profile of ``/v1/predict`` at concurrency
64 (BENCHMARKS.md) put about 3% in the model call and more than a third in FastAPI's request machinery
(routing, dependency solving, the request object, exception wrappers, its per-request telemetry check).
``HotPaths`` is an ASGI middleware, the innermost of the app's: every request has passed the guard, the
metrics and the internal-error handler by then, and the two endpoints are answered here straight from the
ASGI messages, with the same handlers (``Handlers``) that FastAPI's routes call, so that answers, errors
and the OpenAPI schema are the same either way. Everything else goes on to FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lstmkit.serve.json_codec import dumps
from lstmkit.serve.validation import ApiError

__all__ = ["Handlers", "HotPaths"]

_JSON = (b"content-type", b"application/json")


class Handlers:
    """The bodies of the busy endpoints, given the ASGI scope and the raw body: ``predict(scope, body)`` and
    ``step(scope, session_id, body)``, each returning the answer's JSON bytes or raising ``ApiError``; ``predict``
    is None for a model without ``/v1/predict`` (a forecaster, a language model), whose request goes on to the 404."""

    def __init__(self, predict: Callable[[dict[str, Any], bytes], Awaitable[bytes]] | None,
                 step: Callable[[dict[str, Any], str, bytes], Awaitable[bytes]]) -> None:
        self.predict = predict
        self.step = step


class HotPaths:
    """ASGI middleware answering the busy endpoints itself (see the module)."""

    def __init__(self, app: Any, handlers: Handlers) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/v1/predict" and self.handlers.predict is not None:
                await self._answer(send, self.handlers.predict(scope, await _body(receive)))
                return
            if path.startswith("/v1/sessions/") and path.endswith("/step"):
                session_id = path[len("/v1/sessions/"):-len("/step")]
                if session_id and "/" not in session_id:
                    await self._answer(send, self.handlers.step(scope, session_id, await _body(receive)))
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _answer(send: Callable, answer: Awaitable[bytes]) -> None:
        try:
            body, status = await answer, 200
        except ApiError as exc:
            body, status = dumps({"error": exc.message}), exc.status
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _body(receive: Callable) -> bytes:
    """The whole request body (the guard has read it already and hands it over as one message)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client left: the handler sees what came, the answer goes nowhere
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
