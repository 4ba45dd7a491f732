"""Micro-batching of ``/v1/predict``: concurrent requests share one model call.

A collector task waits for the first request, then, while other requests are still being read, up to
``--batch-wait-ms`` more for them (or until ``--max-batch`` sequences are waiting); it pads their sequences into one (N, L, F) batch with their lengths,
runs the model once in the worker thread and gives each request its rows. While a call runs, new requests
queue up and form the next batch, so under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from lstmkit.serve.backends import Backend
from lstmkit.serve.metrics import Metrics
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError

__all__ = ["ARRIVAL_KEY", "BatchWindow", "MicroBatcher", "QueueWorker", "within"]

ARRIVAL_KEY = "lstmkit.arrival"
"""The ASGI scope key under which the guard leaves the end of a request's arrival for its handler."""

log = logging.getLogger(__name__)


async def within(awaitable: Any, seconds: float) -> Any:
    """``await awaitable`` with a time limit of ``seconds`` (none when 0): TimeoutError past it.

    ``asyncio.timeout`` where there is one (Python 3.11+): unlike ``asyncio.wait_for`` it runs the awaitable in
    the caller's task instead of starting a new one per call (the guard's two limits, on every request).
    """
    if seconds <= 0:
        return await awaitable
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class BatchWindow:
    """Wakes a collector when work arrives, and lets it wait up to ``seconds`` for requests still being read.

    Handlers wrap the reading and checking of a request body in ``arrival()``. A collector with work waits,
    at most ``seconds`` and until its batch is full, only when more requests are likely: some request is
    being read, or the previous batch held more than one request. A lone client's request never waits.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.arriving = 0
        self.last_batch_requests = 0  # set by the collector
        self._work = asyncio.Event()
        self._ready = asyncio.Event()

    def begin(self) -> Callable[[], None]:
        """Count a request as arriving until the returned function is called (once; later calls do nothing)."""
        self.arriving += 1
        done = False

        def end() -> None:
            nonlocal done
            if done:
                return
            done = True
            self.arriving -= 1
            if self.arriving == 0 and self.last_batch_requests <= 1:
                self._ready.set()

        return end

    @contextmanager
    def arrival(self, scope: dict[str, Any] | None = None) -> Iterator[None]:
        """Count a request as arriving while it is read and checked. With the request's ASGI ``scope``, also
        end the arrival that the server's guard began when the body started to come in (``ARRIVAL_KEY``):
        this one begins first, so the count never drops to 0 in between."""
        end = self.begin()
        try:
            yield
        finally:
            end()
            if scope is not None:
                scope.pop(ARRIVAL_KEY, lambda: None)()

    def notify(self, full: bool) -> None:
        self._work.set()
        if full:
            self._ready.set()

    async def wait(self, has_work: Callable[[], bool], is_full: Callable[[], bool]) -> None:
        while not has_work():
            self._work.clear()
            await self._work.wait()
        if self.seconds > 0 and (self.arriving > 0 or self.last_batch_requests > 1) and not is_full():
            self._ready.clear()
            try:
                await within(self._ready.wait(), self.seconds)
            except asyncio.TimeoutError:
                pass


class QueueWorker:
    """A background task that drains ``self._pending`` jobs (each with a ``future``) in batches.

    Subclasses set ``_pending``, ``_window`` and ``_task_name`` and implement ``_run_forever``; this class
    starts and stops the task and fails whatever is still queued at shutdown with a 503.
    """

    _task_name = "lstmkit-batcher"
    _pending: deque
    _window: BatchWindow
    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run_forever(), name=self._task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(ApiError(503, "server is shutting down"))

    def arrival(self, scope: dict[str, Any] | None = None):
        """Wrap the reading of a request that will be submitted: the batch window waits for it."""
        return self._window.arrival(scope)

    @property
    def window(self) -> BatchWindow:
        return self._window

    async def _run_forever(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(eq=False)
class _PredictJob:
    sequences: list[np.ndarray]  # each (L_i, F)
    future: asyncio.Future = field(repr=False)


class MicroBatcher(QueueWorker):
    """Collects predict requests into batched model calls."""

    _task_name = "lstmkit-predict-batcher"

    def __init__(self, backend: Backend, executor: Executor, options: ServeOptions, metrics: Metrics) -> None:
        self.backend = backend
        self.executor = executor
        self.options = options
        self.metrics = metrics
        self._pending: deque[_PredictJob] = deque()
        self._queued = 0  # sequences in _pending
        self._window = BatchWindow(options.batch_wait_ms / 1000.0)
        self._task: asyncio.Task | None = None

    async def predict(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Probabilities (n, C) for ``n`` sequences, computed in a shared model call."""
        if self._queued + len(sequences) > self.options.max_queue:
            raise ApiError(503, f"server busy: {self._queued} sequences are waiting (--max-queue "
                                f"{self.options.max_queue}); retry")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_PredictJob(sequences, future))
        self._queued += len(sequences)
        self.metrics.queue_depth.labels("predict").set(self._queued)
        self._window.notify(full=self._queued >= self.options.max_batch)
        return await future

    def _take_batch(self) -> list[_PredictJob]:
        jobs, count = [], 0
        while self._pending and count + len(self._pending[0].sequences) <= self.options.max_batch:
            job = self._pending.popleft()
            jobs.append(job)
            count += len(job.sequences)
        self._queued -= count
        self.metrics.queue_depth.labels("predict").set(self._queued)
        return jobs

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._window.wait(lambda: bool(self._pending), lambda: self._queued >= self.options.max_batch)
            jobs = [job for job in self._take_batch() if not job.future.done()]
            self._window.last_batch_requests = len(jobs)
            if not jobs:
                continue
            sequences = [s for job in jobs for s in job.sequences]
            start = time.perf_counter()
            try:
                probabilities = await loop.run_in_executor(self.executor, _run_predict, self.backend, sequences)
            except Exception as exc:  # noqa: BLE001 - answered as a 500 to each request of the batch
                log.exception("predict batch of %d sequences failed", len(sequences))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(ApiError(500, f"internal error while predicting: {type(exc).__name__}"))
                continue
            self.metrics.model_seconds.labels("predict").observe(time.perf_counter() - start)
            self.metrics.predict_batch.observe(len(sequences))
            row = 0
            for job in jobs:
                n = len(job.sequences)
                if not job.future.done():
                    rows = probabilities[row:row + n]
                    finite = np.isfinite(rows.reshape(n, -1)).all(axis=1)
                    if finite.all():
                        job.future.set_result(rows)
                    else:  # values the network cannot represent: the request's fault, and no 500 for NaN
                        job.future.set_exception(ApiError(
                            422, f"inputs[{int(np.argmin(finite))}]: the model's output is not finite for these "
                                 "values; expected values within the range of the training data"))
                row += n


def _run_predict(backend: Backend, sequences: list[np.ndarray]) -> np.ndarray:
    """Pad to (N, L, F) with lengths and run one backend call (in the worker thread)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    longest = int(lengths.max())
    x = np.zeros((len(sequences), longest, sequences[0].shape[1]), np.float32)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
    return backend.predict(x, lengths)
