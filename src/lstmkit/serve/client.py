"""Python clients of ``/v1/stream`` (``lstmkit serve``'s WebSocket endpoint): many sessions on one connection.

``StreamClient`` is blocking, one call at a time: the simplest way to stream one recording::

    from lstmkit.serve.client import StreamClient

    with StreamClient("ws://127.0.0.1:8000/v1/stream") as client:
        session = client.open()
        for row in recording:                       # (F,) raw values, as the data source gives them
            out = client.step(session, [row])       # out.probabilities (1, C), out.labels ["7"]
        client.close_session(session)

``AsyncStreamClient`` is for many sessions at once on asyncio: every ``step`` awaited at the same time goes
out in one binary message (up to the server's ``--max-batch`` records each), so one connection carries
thousands of sessions. Steps travel as raw float32 (``lstmkit.serve.frames``); opening and closing are JSON.
An error the server answers raises ``StreamError`` with its status and message; the connection stays usable.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.errors import LstmkitError
from lstmkit.serve import frames
from lstmkit.serve.json_codec import dumps, loads

__all__ = ["AsyncStreamClient", "StepOutput", "StreamClient", "StreamError"]

_REFS = 1 << 32


class StreamError(LstmkitError):
    """An error the server answered: ``status`` (as HTTP would have it) and its ``message``."""

    def __init__(self, status: int, message: str, session_id: str | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.session_id = session_id


@dataclass(frozen=True)
class StepOutput:
    """The answer to some steps of one session: ``probabilities`` (K, C) after each step, ``first`` the
    session's index of the first of them, ``label_names`` the model's classes."""

    probabilities: np.ndarray
    first: int
    label_names: tuple[str, ...]

    @property
    def labels(self) -> list[str]:
        """The most probable label after each step."""
        return [self.label_names[i] for i in self.probabilities.argmax(axis=1)]

    @property
    def steps(self) -> int:
        """The session's step count after these steps."""
        return self.first + len(self.probabilities)


def _headers(api_key: str | None) -> dict[str, str]:
    return {} if api_key is None else {"Authorization": f"Bearer {api_key}"}


def _handshake_error(exc: Exception, url: str) -> StreamError:
    """The server's refusal of the upgrade (401, 409, 429, ...) as a StreamError with its message."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return StreamError(0, f"{url}: could not open the WebSocket ({exc})")
    body = getattr(response, "body", b"") or b""
    try:
        message = loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        message = body.decode("utf-8", "replace") or f"HTTP {status}"
    return StreamError(status, message)


def _as_steps(steps: Any, width: int) -> np.ndarray:
    x = np.asarray(steps, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != width or len(x) == 0:
        raise LstmkitError(f"steps: expected an array of shape (K, {width}) (or one step of {width}), got {x.shape}")
    return x


class StreamClient:
    """A blocking client of ``/v1/stream``: one call at a time (see the module)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        from websockets.exceptions import InvalidHandshake
        from websockets.sync.client import connect

        self.timeout = timeout
        try:
            self._ws = connect(url, additional_headers=_headers(api_key), compression=None, open_timeout=timeout,
                               max_size=None)
        except (InvalidHandshake, OSError) as exc:
            raise _handshake_error(exc, url) from None
        self._refs = itertools.count()
        info = self._call({"op": "info"})
        self.label_names: tuple[str, ...] = tuple(info["labels"])
        self.input_size: int = info["input_size"]

    def _receive(self, ref: int) -> Any:
        while True:
            message = self._ws.recv(timeout=self.timeout)
            if isinstance(message, bytes):
                return message
            answer = loads(message)
            if answer.get("op") == "error":
                raise StreamError(answer["status"], answer["error"], answer.get("id"))
            if answer.get("ref") == ref:
                return answer

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        ref = next(self._refs) % _REFS
        self._ws.send(dumps({**message, "ref": ref}).decode())
        return self._receive(ref)

    def open(self) -> str:
        """Open a session; returns its id."""
        return self._call({"op": "open"})["id"]

    def step(self, session_id: str, steps: Any) -> StepOutput:
        """Feed ``steps`` (K, F) raw values (or one step (F,)) to the session; the outputs after each."""
        ref = next(self._refs) % _REFS
        self._ws.send(frames.encode_steps([(session_id, ref, _as_steps(steps, self.input_size))], self.input_size))
        (record,) = frames.decode_outputs(self._receive(ref))
        return StepOutput(np.array(record.probabilities), record.first, self.label_names)

    def close_session(self, session_id: str) -> int:
        """Close the session; returns the steps it took."""
        return self._call({"op": "close", "id": session_id})["steps"]

    def close(self) -> None:
        """Close the connection (its sessions stay open until closed or idle past the server's TTL)."""
        self._ws.close()

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStreamClient:
    """An asyncio client of ``/v1/stream`` for many concurrent sessions (see the module).

    ``await AsyncStreamClient.connect(url)``; then ``open``, ``step`` and ``close_session`` may be awaited from
    many tasks at once: the steps awaited together share one binary message.
    """

    def __init__(self, ws: Any, info: dict[str, Any]) -> None:
        self._ws = ws
        self.label_names: tuple[str, ...] = tuple(info["labels"])
        self.input_size: int = info["input_size"]
        self.max_records: int = info["max_batch"]
        self._refs = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._batch: list[tuple[str, int, np.ndarray]] = []
        self._outgoing: asyncio.Queue[bytes | str] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self._writer: asyncio.Task | None = None
        self._closed: Exception | None = None

    @classmethod
    async def connect(cls, url: str, api_key: str | None = None, timeout: float = 30.0) -> AsyncStreamClient:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        try:
            ws = await connect(url, additional_headers=_headers(api_key), compression=None, open_timeout=timeout,
                               max_size=None)
        except (InvalidHandshake, OSError) as exc:
            raise _handshake_error(exc, url) from None
        await ws.send(dumps({"op": "info", "ref": 0}).decode())
        info = loads(await asyncio.wait_for(ws.recv(), timeout))
        client = cls(ws, info)
        loop = asyncio.get_running_loop()
        client._reader = loop.create_task(client._read())
        client._writer = loop.create_task(client._write())
        return client

    def _expect(self) -> tuple[int, asyncio.Future]:
        if self._closed is not None:
            raise StreamError(0, f"the connection is closed ({self._closed})")
        ref = next(self._refs) % _REFS
        future = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        return ref, future

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        ref, future = self._expect()
        self._outgoing.put_nowait(dumps({**message, "ref": ref}).decode())
        return await future

    async def open(self) -> str:
        """Open a session; returns its id."""
        return (await self._call({"op": "open"}))["id"]

    async def close_session(self, session_id: str) -> int:
        """Close the session; returns the steps it took."""
        return (await self._call({"op": "close", "id": session_id}))["steps"]

    async def step(self, session_id: str, steps: Any) -> StepOutput:
        """Feed ``steps`` (K, F) raw values (or one step (F,)) to the session; the outputs after each."""
        x = _as_steps(steps, self.input_size)
        ref, future = self._expect()
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.append((session_id, ref, x))
        probabilities, first = await future
        return StepOutput(probabilities, first, self.label_names)

    def _flush(self) -> None:
        """Send the steps queued since the last flush, ``max_records`` per message."""
        batch, self._batch = self._batch, []
        for start in range(0, len(batch), self.max_records):
            self._outgoing.put_nowait(frames.encode_steps(batch[start:start + self.max_records], self.input_size))

    async def _write(self) -> None:
        while True:
            await self._ws.send(await self._outgoing.get())

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    for record in frames.decode_outputs(message):
                        future = self._waiting.pop(record.ref, None)
                        if future is not None and not future.done():
                            future.set_result((record.probabilities, record.first))
                    continue
                answer = loads(message)
                ref = answer.get("ref")
                if answer.get("op") == "error" and ref is None:  # a message the server could not read at all
                    self._fail(StreamError(answer["status"], answer["error"]))
                    continue
                future = self._waiting.pop(ref, None)
                if future is None or future.done():
                    continue
                if answer.get("op") == "error":
                    future.set_exception(StreamError(answer["status"], answer["error"], answer.get("id")))
                else:
                    future.set_result(answer)
        except Exception as exc:  # noqa: BLE001 - the connection failed: every waiting call hears it
            self._closed = exc
        self._closed = self._closed or ConnectionError("the server closed the connection")
        self._fail(StreamError(0, f"the connection is closed ({self._closed})"))

    def _fail(self, error: StreamError) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        """Close the connection (its sessions stay open until closed or idle past the server's TTL); calls still
        waiting for an answer raise StreamError."""
        for task in (self._writer, self._reader):
            if task is not None:
                task.cancel()
        self._closed = self._closed or ConnectionError("closed by this client")
        self._fail(StreamError(0, f"the connection is closed ({self._closed})"))
        await self._ws.close()

    async def __aenter__(self) -> AsyncStreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
