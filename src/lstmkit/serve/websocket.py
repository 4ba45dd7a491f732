"""``/v1/stream``: streaming sessions over one WebSocket, on the same sessions and step batcher as HTTP.

Many sessions share a connection; every message names its session(s), and sessions open and close in-band.
A text message is one JSON object with an ``op``; ``ref`` (any JSON value) is optional and echoed back:

=========================================================  ==========================================================
client -> server                                           server -> client
=========================================================  ==========================================================
``{"op": "info"}``                                         ``{"op": "info", "labels", "input_size", "max_batch", ...}``
``{"op": "open"}``                                         ``{"op": "opened", "id", "ttl_seconds"}``
``{"op": "step", "id", "inputs": [[F numbers], ...]}``     ``{"op": "output", "id", "steps", "outputs": [...]}``, the
                                                           outputs as in ``POST /v1/sessions/{id}/step``
``{"op": "close", "id"}``                                  ``{"op": "closed", "id", "steps"}``
a binary STEP message (``lstmkit.serve.frames``)           a binary OUTPUT message: raw float32 probabilities
=========================================================  ==========================================================

Errors are ``{"op": "error", "status", "error", "ref", "id"}`` with the status HTTP would answer (400 a malformed
message, 404 an unknown or expired session, 413 a message over ``--max-payload-bytes``, 422 bad values, 429 over
``--rate-limit`` or ``--max-sessions``, 503 a full queue); the connection stays open. The handshake passes the
same guard as an HTTP request: ``Authorization: Bearer KEY`` when the server has an API key (else the upgrade is
answered 401 with ``{"error": ...}``), the rate limit (429), and a model that can stream (else 409).

Back-pressure: at most ``--stream-max-pending`` messages of a connection are between their arrival and the
sending of their answer. At that limit the server reads nothing more from the connection (uvicorn then stops
reading its socket, and TCP pushes back on the client) until answers have been sent, and sending waits while
the transport's buffer is full. A client that sends without reading therefore holds a bounded amount of server
memory: at most that many messages and their answers. Closing the connection closes none of its sessions: they
stay open (usable over HTTP or another connection) until deleted or idle for ``--session-ttl``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from lstmkit.serve import frames
from lstmkit.serve.backends import ModelInfo
from lstmkit.serve.guard import RateLimiter, api_key_problem, client_address
from lstmkit.serve.json_codec import Formatter, dumps, loads
from lstmkit.serve.metrics import Metrics
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError, parse_steps

__all__ = ["STREAM_PATH", "StreamEndpoint"]

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/stream"
_JSON_OPS = ("info", "open", "step", "close")


class StreamEndpoint:
    """The ASGI app of ``/v1/stream`` (see the module): guards the handshake, then serves the connection.

    ``state`` is the app's dict that holds ``store`` and ``stepper`` once the server has started.
    """

    def __init__(self, info: ModelInfo, options: ServeOptions, state: dict[str, Any], metrics: Metrics,
                 limiter: RateLimiter | None, task_io: Any = None,
                 present_steps: Callable[[np.ndarray, int], list[dict[str, Any]]] | None = None) -> None:
        self.info = info
        self.task_io = task_io
        """How a task other than the classifier reads a step and answers it (``lstmkit.serve.task_io``), or None."""
        self.takes_binary = task_io is None or not hasattr(task_io, "text")
        """Whether steps can come as binary float32 frames: not for models that read tokens (send JSON)."""
        self.step_keys = {"text"} if not self.takes_binary else {"inputs"}
        """The keys of a JSON step message's steps: a token model's HTTP step body has "text", others "inputs"."""
        self.options = options
        self.state = state
        self.limiter = limiter
        self.key = None if options.api_key is None else options.api_key.encode()
        self.formatter = Formatter(info.label_names)
        self.present_steps = present_steps or self.formatter.step_outputs
        registry = metrics.registry
        self.connections = Gauge("lstmkit_stream_connections", "Open /v1/stream WebSockets", registry=registry)
        self.pending = Gauge("lstmkit_stream_pending_messages", "Stream messages received and not yet answered, "
                             "over all connections (each at most --stream-max-pending)", registry=registry)
        self.messages = Counter("lstmkit_stream_messages", "Stream messages by kind and answer status",
                                ["kind", "status"], registry=registry)
        self.ok_binary = self.messages.labels("binary", "200")

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _deny(scope, send, *refusal)
            return
        await send({"type": "websocket.accept"})
        self.connections.inc()
        try:
            await _Connection(self, scope).run(receive, send)
        finally:
            self.connections.dec()

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """``(status, message, headers)`` when the handshake is refused, as the HTTP guard would refuse it."""
        if self.limiter is not None:
            wait = self.limiter.take(client_address(scope))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                message = (f"too many requests: more than {self.options.rate_limit:g} per second from this client "
                           f"(--rate-limit); retry after {retry} s")
                return 429, message, [(b"retry-after", str(retry).encode())]
        if self.key is not None:
            problem = api_key_problem(scope, self.key)
            if problem is not None:
                return 401, f"WebSocket {STREAM_PATH}: {problem}", [(b"www-authenticate", b'Bearer realm="lstmkit"')]
        if self.info.streaming_unsupported is not None:
            message = (f"sessions are not supported for this model: {self.info.streaming_unsupported}; use "
                       "/v1/predict with whole sequences")
            return 409, message, []
        if "stepper" not in self.state:
            return 503, "server is starting or shutting down", [(b"retry-after", b"1")]
        return None

    def rate_limited(self, scope: dict[str, Any]) -> ApiError | None:
        """A 429 for one more message from this client, or None (each message counts as one request)."""
        if self.limiter is None:
            return None
        wait = self.limiter.take(client_address(scope))
        if wait <= 0:
            return None
        return ApiError(429, f"too many requests: more than {self.options.rate_limit:g} per second from this "
                             f"client (--rate-limit); retry after {max(1, math.ceil(wait))} s")


async def _deny(scope: dict[str, Any], send: Callable, status: int, message: str,
                headers: list[tuple[bytes, bytes]]) -> None:
    """Refuse the upgrade with an HTTP ``status`` and ``{"error": message}`` (a bare close where the server
    lacks the ASGI denial-response extension: uvicorn answers that with 403)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = dumps({"error": message})
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "websocket.http.response.body", "body": body})


def _error(status: int, message: str, ref: Any = None, session_id: Any = None) -> dict[str, Any]:
    return {"op": "error", "status": status, "error": message, "ref": ref, "id": session_id}


class _Connection:
    """One accepted WebSocket: a reader that handles messages, a writer that sends answers in order.

    Every message takes a slot (``--stream-max-pending`` in all) that is given back once its answer has been
    sent; the reader takes the slot before it receives, so with none free it stops reading.
    """

    def __init__(self, endpoint: StreamEndpoint, scope: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self.scope = scope
        self.info = endpoint.info
        self.options = endpoint.options
        self.store = endpoint.state["store"]
        self.stepper = endpoint.state["stepper"]
        self.slots = asyncio.Semaphore(self.options.stream_max_pending)
        self.outbox: asyncio.Queue[list[Any]] = asyncio.Queue()  # each: the answers (dicts, bytes) of a message
        self.tasks: set[asyncio.Task] = set()
        self.unanswered = 0
        self.writer_failed = False
        self.reader: asyncio.Task | None = None

    async def run(self, receive: Callable, send: Callable) -> None:
        self.reader = asyncio.current_task()
        writer = asyncio.get_running_loop().create_task(self._write(send), name="lstmkit-stream-writer")
        try:
            while True:
                await self.slots.acquire()
                message = await receive()
                if message["type"] != "websocket.receive":  # websocket.disconnect
                    break
                self.unanswered += 1
                self.endpoint.pending.inc()
                try:
                    self._handle(message)
                except Exception as exc:
                    log.exception("stream message failed")
                    self._answer([_error(500, f"internal error: {type(exc).__name__}")])
        except asyncio.CancelledError:
            if not self.writer_failed:  # the server is stopping: not ours to swallow
                raise
        finally:
            for task in list(self.tasks):
                task.cancel()
            writer.cancel()
            self.endpoint.pending.dec(self.unanswered)  # read and never answered: the client has gone

    async def _write(self, send: Callable) -> None:
        while True:
            answers = await self.outbox.get()
            try:
                for answer in answers:
                    if isinstance(answer, bytes):
                        await send({"type": "websocket.send", "bytes": answer})
                    else:
                        await send({"type": "websocket.send", "text": dumps(answer).decode()})
            except Exception:  # noqa: BLE001 - the client is gone (uvicorn's ClientDisconnected, or closed)
                # The reader may be waiting for a slot that will never be freed: end the connection.
                self.writer_failed = True
                self.reader.cancel()
                return
            self.unanswered -= 1
            self.endpoint.pending.dec()
            self.slots.release()

    def _answer(self, answers: list[Any]) -> None:
        """Queue the answers of one message (its slot is freed once they are sent)."""
        self.outbox.put_nowait(answers)

    # ---- one message ----

    def _handle(self, message: dict[str, Any]) -> None:
        data = message.get("bytes")
        text = message.get("text")
        size = len(data) if data is not None else len(text.encode()) if text is not None else 0
        kind = "binary" if data is not None else "json"
        if size > self.options.max_payload_bytes:
            self._count(kind, 413)
            self._answer([_error(413, f"message: expected at most {self.options.max_payload_bytes} bytes "
                                      f"(--max-payload-bytes), got {size}")])
            return
        limited = self.endpoint.rate_limited(self.scope)
        if limited is not None:
            self._count(kind, limited.status)
            self._answer(self._refuse_all(data, text, limited))
            return
        if data is not None:
            self._binary_steps(data)
        else:
            self._json(text or "")

    def _refuse_all(self, data: bytes | None, text: str | None, error: ApiError) -> list[dict[str, Any]]:
        """``error`` for each record of a message (by ``ref``, so a client can tell which steps it concerns)."""
        try:
            if data is not None:
                records = frames.decode_steps(data, self.info.input_size, self.options.max_batch,
                                              self.options.max_sequence_length)
                return [_error(error.status, error.message, ref, session_id)
                        for session_id, ref in zip(records.ids, records.refs)]
            body = loads(text or "")
            if isinstance(body, dict):
                return [_error(error.status, error.message, body.get("ref"), body.get("id"))]
        except (frames.FrameError, ValueError, RecursionError):
            pass
        return [_error(error.status, error.message)]

    def _count(self, kind: str, status: int) -> None:
        self.endpoint.messages.labels(kind, str(status)).inc()

    def _json(self, text: str) -> None:
        try:
            body = loads(text)
        except (ValueError, RecursionError) as exc:
            self._count("json", 400)
            self._answer([_error(400, f"message: expected a JSON object or a binary STEP message, got invalid "
                                      f"JSON ({exc})")])
            return
        ref = body.get("ref") if isinstance(body, dict) else None
        session_id = body.get("id") if isinstance(body, dict) else None
        try:
            op = self._json_op(body)
            if op == "step":
                self._json_step(body, ref)
                return
            if op == "info":
                answer = {"op": "info", "labels": self.info.label_names, "input_size": self.info.input_size,
                          "max_batch": self.options.max_batch, "max_sequence_length": self.options.max_sequence_length,
                          "max_pending": self.options.stream_max_pending, "ttl_seconds": self.options.session_ttl}
            elif op == "open":
                session = self.store.create()
                answer = {"op": "opened", "id": session.id, "ttl_seconds": self.options.session_ttl}
            else:
                session = self.store.close(self._session_id(body))
                answer = {"op": "closed", "id": session.id, "steps": session.steps}
        except ApiError as exc:
            self._count("json", exc.status)
            self._answer([_error(exc.status, exc.message, ref, session_id)])
            return
        self._count("json", 200)
        answer["ref"] = ref
        self._answer([answer])

    def _json_op(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise ApiError(400, f'message: expected a JSON object {{"op": ...}}, got a JSON {type(body).__name__}')
        op = body.get("op")
        if op not in _JSON_OPS:
            raise ApiError(400, f"message: expected \"op\" to be one of {', '.join(_JSON_OPS)}, got {op!r}")
        step_keys = self.endpoint.step_keys if op == "step" else set()
        allowed = {"op", "ref"} | ({"id"} if op in ("step", "close") else set()) | step_keys
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(400, f"message: unknown key {unknown[0]!r} for op {op!r}; expected only "
                                f"{', '.join(sorted(allowed))}")
        return op

    @staticmethod
    def _session_id(body: dict[str, Any]) -> str:
        session_id = body.get("id")
        if not isinstance(session_id, str):
            raise ApiError(400, f'message: expected "id", the session id as a string, got {session_id!r}')
        return session_id

    def _json_step(self, body: dict[str, Any], ref: Any) -> None:
        session = self.store.get(self._session_id(body))
        task_io = self.endpoint.task_io
        if task_io is not None:  # the step's keys as the task's HTTP step body has them ("inputs", or "text")
            x = task_io.parse_step({k: v for k, v in body.items() if k not in ("op", "id", "ref")}, self.options)
        else:
            if "inputs" not in body:
                raise ApiError(400, 'message: expected "inputs" holding the steps, each a list of numbers')
            x = parse_steps({"inputs": body["inputs"]}, self.info, self.options)
        future = self.stepper.submit(session, x)
        self._spawn(self._json_answer(future, session, ref))

    async def _json_answer(self, future: asyncio.Future, session: Any, ref: Any) -> None:
        try:
            probabilities, first = await future
        except ApiError as exc:
            self._count("json", exc.status)
            self._answer([_error(exc.status, exc.message, ref, session.id)])
            return
        self._count("json", 200)
        self._answer([{"op": "output", "id": session.id, "ref": ref, "steps": first + len(probabilities),
                       "outputs": self.endpoint.present_steps(probabilities, first)}])

    def _binary_steps(self, data: bytes) -> None:
        if not self.endpoint.takes_binary:
            self._count("binary", 400)
            self._answer([_error(400, "binary frames carry float32 steps; this model reads tokens: send JSON "
                                      '{"op": "step", "id": ..., "text": "the next tokens"} messages')])
            return
        try:
            records = frames.decode_steps(data, self.info.input_size, self.options.max_batch,
                                          self.options.max_sequence_length)
        except frames.FrameError as exc:
            self._count("binary", 400)
            self._answer([_error(400, str(exc))])
            return
        errors: list[dict[str, Any]] = []
        submitted: list[tuple[str, int, asyncio.Future]] = []
        bad = self._bad_values(records)
        for index, (session_id, ref, x) in enumerate(zip(records.ids, records.refs, records.inputs)):
            try:
                if index in bad:
                    raise bad[index]
                session = self.store.get(session_id)
                submitted.append((session_id, ref, self.stepper.submit(session, x)))
            except ApiError as exc:
                errors.append(_error(exc.status, exc.message, ref, session_id))
        if not submitted:
            self._count("binary", errors[0]["status"])
            self._answer(errors)
            return
        self._spawn(self._binary_answer(submitted, errors))

    def _bad_values(self, records: frames.StepRecords) -> dict[int, ApiError]:
        """The records whose values the HTTP endpoint would refuse (422): NaN, Infinity, or a value that leaves
        float32 once standardised with the training statistics. One check over all records first."""
        everything = records.block if records.block is not None else np.concatenate(records.inputs)
        if np.isfinite(everything).all() and np.isfinite(self.info.standardize(everything)).all():
            return {}
        bad: dict[int, ApiError] = {}
        for index, x in enumerate(records.inputs):
            finite = np.isfinite(x)
            if not finite.all():
                t, f = (int(i) for i in np.argwhere(~finite)[0])
                shown = "NaN" if math.isnan(x[t, f]) else "Infinity"
                bad[index] = ApiError(422, f"inputs[{t}][{f}]: expected a finite number, got {shown}")
                continue
            standardized = np.isfinite(self.info.standardize(x))
            if not standardized.all():
                t, f = (int(i) for i in np.argwhere(~standardized)[0])
                bad[index] = ApiError(422, f"inputs[{t}][{f}]: expected a value that stays within float32 once "
                                           f"standardised with the training statistics, got {x[t, f]:g}")
        return bad

    async def _binary_answer(self, submitted: list[tuple[str, int, asyncio.Future]],
                             errors: list[dict[str, Any]]) -> None:
        outputs = []
        for session_id, ref, future in submitted:
            try:
                probabilities, first = await future
            except ApiError as exc:
                errors.append(_error(exc.status, exc.message, ref, session_id))
                continue
            outputs.append((session_id, ref, first, probabilities))
        answers: list[Any] = []
        if outputs:
            answers.append(frames.encode_outputs(outputs, outputs[0][3].shape[-1]))
            self.endpoint.ok_binary.inc()
        else:
            self._count("binary", errors[0]["status"])
        self._answer(answers + errors)

    def _spawn(self, coroutine: Any) -> None:
        """Run ``coroutine``, which answers one message, in the background; if it fails, answer a 500."""
        task = asyncio.get_running_loop().create_task(self._answering(coroutine))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answering(self, coroutine: Any) -> None:
        try:
            await coroutine
        except Exception as exc:
            log.exception("stream message failed")
            self._answer([_error(500, f"internal error: {type(exc).__name__}")])

