"""Task-independent checks of a graph against PyTorch: a full batch, a batch padded with garbage past random
lengths, streams fed in chunks, and ``onnx.reference`` on the full batch where it implements the ops.

Each task says how to feed its graph and what PyTorch answers (``Probe``); the checks return the largest
absolute difference each, which the exporter holds against the tolerance before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Probe", "max_diff", "ort_session", "reference_check", "state_shape", "stream_check", "whole_checks"]

log = logging.getLogger(__name__)


def ort_session(proto: Any) -> Any:
    """An ONNX Runtime CPU session of ``proto`` on one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """The largest absolute difference of two arrays of one shape, in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


@dataclass
class Probe:
    """How a task's graph is fed and what PyTorch answers, for the checks of this module.

    ``x`` holds N full-length inputs, time on axis 1. ``feeds(x, lengths)`` gives the graph's inputs;
    ``outputs`` names the graph outputs compared, concatenated on the last axis; ``expected(x)`` is
    PyTorch's answer for inputs without padding (all of ``x``'s length), in the same layout; ``garbage(shape)``
    fills padding with values that must not leak; ``per_step``: the answers have a time axis 1, compared up to
    each length only.
    """

    x: np.ndarray
    feeds: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]
    outputs: list[str]
    expected: Callable[[np.ndarray], np.ndarray]
    garbage: Callable[[tuple[int, ...], np.random.Generator], np.ndarray]
    per_step: bool = False
    min_length: int = 1


def _answers(session: Any, outputs: list[str], feeds: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate(session.run(outputs, feeds), axis=-1)


def whole_checks(proto: Any, probe: Probe, rng: np.random.Generator) -> dict[str, float]:
    """``fixed_length`` (the full batch) and ``variable_length`` (garbage past random lengths, against each
    group of one length run alone in PyTorch: so padding provably does not leak)."""
    session = ort_session(proto)
    x = probe.x
    n, length = x.shape[:2]
    checks = {"fixed_length": max_diff(_answers(session, probe.outputs, probe.feeds(x, np.full(n, length))),
                                       probe.expected(x))}
    low = probe.min_length
    choices = np.unique([length, low, max(low, length // 2), max(low, length - 1)])
    lengths = rng.choice(choices, size=n)
    lengths[0] = length
    padded = x.copy()
    for i, steps in enumerate(lengths):
        padded[i, steps:] = probe.garbage(padded[i, steps:].shape, rng)
    got = _answers(session, probe.outputs, probe.feeds(padded, lengths))
    worst = 0.0
    for steps in np.unique(lengths):
        rows = np.flatnonzero(lengths == steps)
        want = probe.expected(x[rows, :steps])
        worst = max(worst, max_diff(got[rows, :steps] if probe.per_step else got[rows], want))
    checks["variable_length"] = worst
    return checks


def state_shape(lstm: Any) -> tuple[int, int, int]:
    """(layers, width of h, width of c) of an ``lstmkit.nn.LSTM``'s stream state: h is ``proj_size`` wide when it
    projects."""
    return lstm.num_layers, lstm.output_size, lstm.hidden_size


def stream_check(proto: Any, probe: Probe, state_shape: tuple[int, int, int],
                 final_state: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                 rng: np.random.Generator) -> float:
    """Streams fed to a step graph in the chunks [0, 1), [1, 3), [3, L), each stream ending at its own length
    (at least 4 steps) with garbage past it, carrying ``h_n``/``c_n`` into the next chunk's ``h0``/``c0``;
    against PyTorch's per-step answers (``probe.expected``, causal) and its final states
    (``final_state(x, ends)``). ``state_shape``: (layers, H_out, H), as ``state_shape(lstm)`` gives it."""
    session = ort_session(proto)
    x = probe.x
    n, length = x.shape[:2]
    ends = np.maximum(rng.choice(np.unique([length, max(1, length // 2), length - 1 or 1]), size=n), min(4, length))
    stream = x.copy()
    for i, steps in enumerate(ends):
        stream[i, steps:] = probe.garbage(stream[i, steps:].shape, rng)
    expected = probe.expected(x)  # (N, L, K): causal, so every prefix's answers
    want_h, want_c = final_state(x, ends)
    layers, h_width, c_width = state_shape
    h, c = np.zeros((layers, n, h_width), np.float32), np.zeros((layers, n, c_width), np.float32)
    worst = 0.0
    bounds = sorted({0, min(1, length), min(3, length), length})
    for start, stop in zip(bounds[:-1], bounds[1:]):
        chunk_lengths = np.minimum(ends - start, stop - start).astype(np.int64)
        feeds = {**probe.feeds(np.ascontiguousarray(stream[:, start:stop]), chunk_lengths), "h0": h, "c0": c}
        *answers, h, c = session.run([*probe.outputs, "h_n", "c_n"], feeds)
        got = np.concatenate(answers, axis=-1)
        for i, real in enumerate(chunk_lengths):
            worst = max(worst, max_diff(got[i, :real], expected[i, start:start + real]))
    return max(worst, max_diff(h, want_h), max_diff(c, want_c))


def reference_check(proto: Any, probe: Probe) -> float | None:
    """``onnx.reference`` (ONNX's own Python evaluator) on the first sequences of the full batch, against
    PyTorch; None where it does not implement an op as the graph uses it (its LSTM ignores
    ``sequence_lens``, which is harmless on a full batch)."""
    from onnx.reference import ReferenceEvaluator

    x = probe.x[:4]
    n, length = x.shape[:2]
    try:
        evaluator = ReferenceEvaluator(proto)
        got = np.concatenate(evaluator.run(probe.outputs, probe.feeds(x, np.full(n, length))), axis=-1)
    except (NotImplementedError, RuntimeError, TypeError, ValueError, KeyError) as exc:
        log.info("export: onnx.reference cannot run this graph (%s: %s); checked in ONNX Runtime only",
                 type(exc).__name__, exc)
        return None
    return max_diff(got, probe.expected(x))
