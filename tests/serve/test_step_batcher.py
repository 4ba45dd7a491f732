"""The cross-session step batcher and the session store, driven directly (no HTTP)."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serve_helpers import FEATURES, OPTIONS, offline_steps
from lstmkit.serve.backends import TorchBackend
from lstmkit.serve.metrics import Metrics
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.sessions import SessionStore, StepBatcher
from lstmkit.serve.validation import ApiError


def run_batcher(reference, body, options=OPTIONS):
    backend = TorchBackend(reference)
    metrics = Metrics()
    store = SessionStore(backend.info.num_layers, backend.info.state_sizes, options, metrics)

    async def main():
        with ThreadPoolExecutor(1, initializer=backend.thread_init) as executor:
            batcher = StepBatcher(backend, store, executor, options, metrics)
            batcher.start()
            try:
                return await body(batcher, store)
            finally:
                await batcher.stop()

    return asyncio.run(main()), metrics


def test_queued_steps_of_one_session_run_in_order_one_per_call(reference):
    rng = np.random.default_rng(5)
    streams = [rng.normal(3.0, 2.0, size=(6, FEATURES)).astype(np.float32) for _ in range(3)]

    async def body(batcher, store):
        sessions = [store.create() for _ in streams]
        # every step of every stream queued at once, in order; a session's steps must not share a call
        futures = [asyncio.ensure_future(batcher.step(session, stream[t:t + 1]))
                   for t in range(6) for session, stream in zip(sessions, streams)]
        return await asyncio.gather(*futures)

    results, metrics = run_batcher(reference, body)
    for i, stream in enumerate(streams):
        mine = results[i::3]
        assert [first for _, first in mine] == list(range(6))
        np.testing.assert_allclose(np.concatenate([p for p, _ in mine]), offline_steps(reference, stream),
                                   atol=1e-5, rtol=0)
    calls = metrics.step_batch.collect()[0].samples
    count = next(s.value for s in calls if s.name.endswith("_count"))
    total = next(s.value for s in calls if s.name.endswith("_sum"))
    assert total == 18 and count >= 6  # at least 6 rounds: one step of each session per call


def test_multi_step_requests_of_different_lengths_share_a_call(reference):
    rng = np.random.default_rng(6)
    streams = [rng.normal(3.0, 2.0, size=(n, FEATURES)).astype(np.float32) for n in (1, 4, 7)]

    async def body(batcher, store):
        sessions = [store.create() for _ in streams]
        return await asyncio.gather(*[batcher.step(s, x) for s, x in zip(sessions, streams)]), sessions

    (results, sessions), metrics = run_batcher(reference, body)
    for (probabilities, first), stream, session in zip(results, streams, sessions):
        assert first == 0 and session.steps == len(stream)
        np.testing.assert_allclose(probabilities, offline_steps(reference, stream), atol=1e-5, rtol=0)


def test_a_session_deleted_while_queued_gets_404_and_frees_its_slot(reference):
    async def body(batcher, store):
        session = store.create()
        pending = asyncio.ensure_future(batcher.step(session, np.ones((1, FEATURES), np.float32)))
        await asyncio.sleep(0)  # queued, not yet run
        assert session.busy == 1
        store.close(session.id)
        with pytest.raises(ApiError, match=r"deleted or expired before this step ran"):
            await pending
        late = store.create()
        store.close(late.id)
        with pytest.raises(ApiError, match=r"session [0-9a-f]+: deleted or expired$"):
            await batcher.step(late, np.ones((1, FEATURES), np.float32))
        return store

    store, _ = run_batcher(reference, body)
    assert len(store) == 0 and len(store._free) == store.h.shape[1]


def test_store_grows_and_caps(reference):
    options = ServeOptions(max_sessions=300)
    store = SessionStore(2, (8, 8), options, Metrics())
    sessions = [store.create() for _ in range(300)]
    assert store.h.shape == (2, 300, 8) and len({s.slot for s in sessions}) == 300
    with pytest.raises(ApiError, match=r"too many sessions: 300 are open \(--max-sessions 300\)") as caught:
        store.create()
    assert caught.value.status == 429
    store.close(sessions[0].id)
    assert store.create().slot == sessions[0].slot
