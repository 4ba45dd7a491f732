"""Streaming sessions: LSTM states kept on the server, and the batcher that steps many sessions at once.

Every open session owns one slot of two state slabs, ``h`` (num_layers, capacity, H_out) and ``c``
(num_layers, capacity, H). The ``StepBatcher`` collects the pending step requests of many sessions
(Triton's sequence batcher, in the "oldest" style): it gathers their inputs and state slots into one
batch, runs one model call, and scatters the new states and the per-step outputs back. A session's
requests are answered in the order they came; at most one of them is in any model call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from lstmkit.serve.backends import Backend
from lstmkit.serve.batcher import BatchWindow, QueueWorker
from lstmkit.serve.metrics import Metrics
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError

__all__ = ["Session", "SessionStore", "StepBatcher"]

log = logging.getLogger(__name__)

_FORGET_AFTER = 100_000  # expired ids remembered, so that a late request hears "expired", not "unknown"


@dataclass(eq=False)
class Session:
    id: str
    slot: int
    created: float
    last_used: float
    steps: int = 0
    busy: int = 0
    """Step requests queued or running for this session."""
    closed: bool = False
    released: bool = False
    """Whether the slot went back to the store (once closed and idle)."""


class SessionStore:
    """Open sessions, their state slots, the idle TTL and the session cap."""

    def __init__(self, num_layers: int, state_sizes: tuple[int, int], options: ServeOptions, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.metrics = metrics
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self._expired: OrderedDict[str, float] = OrderedDict()
        self._num_layers = num_layers
        self._sizes = state_sizes
        capacity = min(options.max_sessions, 256)
        self.h = np.zeros((num_layers, capacity, state_sizes[0]), np.float32)
        self.c = np.zeros((num_layers, capacity, state_sizes[1]), np.float32)
        self._free = list(range(capacity - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.sessions)

    def _grow(self) -> None:
        old = self.h.shape[1]
        new = min(self.options.max_sessions, max(2 * old, 1))
        self.h = np.concatenate([self.h, np.zeros((self._num_layers, new - old, self._sizes[0]), np.float32)], 1)
        self.c = np.concatenate([self.c, np.zeros((self._num_layers, new - old, self._sizes[1]), np.float32)], 1)
        self._free.extend(range(new - 1, old - 1, -1))

    def create(self) -> Session:
        if len(self.sessions) >= self.options.max_sessions:
            self.reap()
        if len(self.sessions) >= self.options.max_sessions:
            raise ApiError(429, f"too many sessions: {len(self.sessions)} are open (--max-sessions "
                                f"{self.options.max_sessions}); delete finished sessions or wait for idle ones to "
                                f"expire ({self.options.session_ttl:g} s)")
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self.h[:, slot] = 0.0
        self.c[:, slot] = 0.0
        now = self.clock()
        session = Session(secrets.token_hex(16), slot, now, now)
        self.sessions[session.id] = session
        self.metrics.sessions_opened.inc()
        self.metrics.sessions_active.set(len(self.sessions))
        return session

    def _expired_message(self, session_id: str) -> str:
        return (f"session {session_id}: expired (idle for more than {self.options.session_ttl:g} s, "
                "--session-ttl); open a new one")

    def get(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            if session_id in self._expired:
                raise ApiError(404, self._expired_message(session_id))
            raise ApiError(404, f"session {session_id}: not found (unknown or deleted)")
        if self._is_expired(session, self.clock()):
            self._remove(session, "expired")
            raise ApiError(404, self._expired_message(session_id))
        return session

    def close(self, session_id: str) -> Session:
        session = self.get(session_id)
        self._remove(session, "deleted")
        return session

    def _is_expired(self, session: Session, now: float) -> bool:
        return session.busy == 0 and now - session.last_used > self.options.session_ttl

    def _remove(self, session: Session, reason: str) -> None:
        del self.sessions[session.id]
        session.closed = True
        if reason == "expired":
            self._expired[session.id] = self.clock()
            while len(self._expired) > _FORGET_AFTER:
                self._expired.popitem(last=False)
        self.release(session)
        self.metrics.sessions_closed.labels(reason).inc()
        self.metrics.sessions_active.set(len(self.sessions))

    def release(self, session: Session) -> None:
        """Give back the slot of a closed session whose last step request has finished."""
        if session.closed and session.busy == 0 and not session.released:
            session.released = True
            self._free.append(session.slot)

    def reap(self) -> int:
        """Expire every idle session past the TTL; returns how many."""
        now = self.clock()
        expired = [s for s in self.sessions.values() if self._is_expired(s, now)]
        for session in expired:
            self._remove(session, "expired")
        return len(expired)


@dataclass(eq=False)
class _StepJob:
    session: Session
    x: np.ndarray  # (K, F)
    future: asyncio.Future = field(repr=False)


class StepBatcher(QueueWorker):
    """Runs the pending steps of many sessions as one batched model call per round."""

    _task_name = "lstmkit-step-batcher"

    def __init__(self, backend: Backend, store: SessionStore, executor: Executor, options: ServeOptions,
                 metrics: Metrics) -> None:
        self.backend = backend
        self.store = store
        self.executor = executor
        self.options = options
        self.metrics = metrics
        self._pending: deque[_StepJob] = deque()
        self._window = BatchWindow(options.batch_wait_ms / 1000.0)
        self._task: asyncio.Task | None = None
        self._queue_depth = metrics.queue_depth.labels("step")  # looked up once, not per step

    async def step(self, session: Session, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Queue ``x`` (K, F) for ``session``; returns the probabilities after each step, (K, C), and the
        session's index of the first of these steps."""
        return await self.submit(session, x)

    def submit(self, session: Session, x: np.ndarray) -> asyncio.Future:
        """Queue ``x`` (K, F) for ``session`` now; the future gives what ``step`` returns. Many sessions' steps
        can be queued before any is awaited (the WebSocket endpoint does so for the records of one message)."""
        if session.closed:
            raise ApiError(404, f"session {session.id}: deleted or expired")
        if len(self._pending) >= self.options.max_queue:
            raise ApiError(503, f"server busy: {len(self._pending)} step requests are waiting (--max-queue); retry")
        future = asyncio.get_running_loop().create_future()
        session.busy += 1
        self._pending.append(_StepJob(session, x, future))
        self._queue_depth.set(len(self._pending))
        self._window.notify(full=len(self._pending) >= self.options.max_batch)
        return future

    def _take_round(self) -> list[_StepJob]:
        taken: list[_StepJob] = []
        seen: set[str] = set()
        rest: deque[_StepJob] = deque()
        for job in self._pending:
            if len(taken) < self.options.max_batch and job.session.id not in seen:
                seen.add(job.session.id)
                taken.append(job)
            else:
                rest.append(job)
        self._pending = rest
        return taken

    def _finish(self, job: _StepJob, result: Any = None, error: Exception | None = None) -> None:
        job.session.busy -= 1
        self.store.release(job.session)
        if job.future.done():  # the client went away
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._window.wait(lambda: bool(self._pending), lambda: len(self._pending) >= self.options.max_batch)
            jobs = self._take_round()
            self._window.last_batch_requests = len(jobs)
            self._queue_depth.set(len(self._pending))
            live = []
            for job in jobs:
                if job.session.closed:
                    self._finish(job, error=ApiError(404, f"session {job.session.id}: deleted or expired "
                                                          "before this step ran"))
                else:
                    live.append(job)
            if not live:
                continue
            slots = np.array([job.session.slot for job in live])
            h, c = self.store.h[:, slots], self.store.c[:, slots]  # copies: (num_layers, N, H)
            inputs = [job.x for job in live]
            start = time.perf_counter()
            try:
                probabilities, h, c = await loop.run_in_executor(self.executor, _run_steps, self.backend, inputs, h, c)
            except Exception as exc:  # noqa: BLE001 - answered as a 500 to each request of the round
                log.exception("step batch of %d sessions failed", len(live))
                for job in live:
                    self._finish(job, error=ApiError(500, f"internal error while stepping: {type(exc).__name__}"))
                continue
            self.metrics.model_seconds.labels("step").observe(time.perf_counter() - start)
            self.metrics.step_batch.observe(len(live))
            # A session whose outputs or states are not finite keeps its old state and step count: its request
            # gets a 422, and the session goes on answering as before.
            finite = (np.isfinite(probabilities.reshape(len(live), -1)).all(axis=1)
                      & np.isfinite(h).all(axis=(0, 2)) & np.isfinite(c).all(axis=(0, 2)))
            keep = np.flatnonzero(finite)
            self.store.h[:, slots[keep]], self.store.c[:, slots[keep]] = h[:, keep], c[:, keep]
            now = self.store.clock()
            for i, job in enumerate(live):
                if not finite[i]:
                    self._finish(job, error=ApiError(422, "inputs: the model's output or state is not finite for "
                                                          "these values; expected values within the range of the "
                                                          "training data (the session is unchanged)"))
                    continue
                steps = len(job.x)
                job.session.steps += steps
                job.session.last_used = now
                self.metrics.session_steps.inc(steps)
                self._finish(job, (probabilities[i, :steps], job.session.steps - steps))


def _run_steps(backend: Backend, inputs: list[np.ndarray], h: np.ndarray, c: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad the sessions' inputs to (N, K, F) and run one backend call (in the worker thread)."""
    lengths = np.array([len(x) for x in inputs], dtype=np.int64)
    longest = int(lengths.max())
    if longest == 1:
        x = np.stack(inputs)  # (N, 1, F)
    else:
        x = np.zeros((len(inputs), longest, inputs[0].shape[1]), np.float32)
        for i, steps in enumerate(inputs):
            x[i, : len(steps)] = steps
    return backend.steps(x, lengths, np.ascontiguousarray(h), np.ascontiguousarray(c))
