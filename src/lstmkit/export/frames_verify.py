"""Verification of the frames graph against PyTorch before anything is written.

Checks (each the max abs difference of the predicted frames):

``fixed_length``
    a full batch of the recipe's input length against ``ConvLSTMForecaster`` on the same frames;
``variable_length``
    the batch again with random lengths and frames of garbage (values of order 1e3) past them, against
    each sequence run alone at its length in PyTorch: padding must reach neither the states nor the frame
    the ``warp`` head starts from;
``reference``
    the graph in ``onnx.reference`` (the specification's evaluator) on the
    first sequences, full length.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from lstmkit.errors import LstmkitError
from lstmkit.export.errors import ExportError
from lstmkit.export.runtime import max_diff, reference_run
from lstmkit.export.verify import ort_session

__all__ = ["verification_frames", "verify_frames"]

log = logging.getLogger(__name__)


def verification_frames(forecaster: Any, samples: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Input frames (N, L, C, H, W) in 0..1: ``samples``, else sequences the recipe generates from its held-out
    digits, else uniform noise; L is the recipe's ``input_frames``."""
    d = forecaster.config.data
    shape = (forecaster.model.channels, d.frame_size, d.frame_size)
    if samples is not None:
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 5 or x.shape[2:] != shape or x.shape[0] < 1 or x.shape[1] < 1:
            raise ExportError(f"export: frames verification samples: expected frames (N, L, {shape[0]}, "
                              f"{shape[1]}, {shape[2]}), got {x.shape}")
        return x
    try:
        from lstmkit.data.moving_digits import digit_images, moving_digits

        _, test_images = digit_images(d.source, d.digit_size)
        frames = moving_digits(test_images, 6, np.random.default_rng([forecaster.config.train.seed, 2]),
                               length=d.input_frames, frame_size=d.frame_size, num_digits=d.num_digits,
                               speed=d.speed)
        return np.ascontiguousarray(frames[:, :, None], dtype=np.float32)
    except LstmkitError as exc:
        log.info("export: verifying on random frames (the digits did not load: %s)", exc)
    return rng.random((6, d.input_frames, *shape), dtype=np.float32)


@torch.no_grad()
def _torch_forecast(forecaster: Any, frames: np.ndarray) -> np.ndarray:
    future = forecaster.config.data.output_frames
    return forecaster.model(torch.from_numpy(np.ascontiguousarray(frames)), future).numpy()


def verify_frames(forecaster: Any, proto: Any, samples: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Run the frames graph in ONNX Runtime (and ``onnx.reference``) against PyTorch; the max abs difference
    of each check (see the module docstring)."""
    forecaster.model.eval()
    rng = np.random.default_rng(seed)
    x = verification_frames(forecaster, samples, rng)
    n, length = x.shape[:2]
    session = ort_session(proto)
    full = np.full(n, length, dtype=np.int64)
    checks = {"fixed_length": max_diff(session.run(["predicted"], {"frames": x, "lengths": full})[0],
                                       _torch_forecast(forecaster, x))}

    lengths = rng.integers(1, length + 1, size=n)
    lengths[0] = length
    padded = x.copy()
    for i, steps in enumerate(lengths):
        padded[i, steps:] = rng.normal(0.0, 1e3, size=padded[i, steps:].shape)  # garbage that must not leak
    got = session.run(["predicted"], {"frames": padded, "lengths": lengths.astype(np.int64)})[0]
    worst = 0.0
    for steps in np.unique(lengths):  # sequences of one length together: no padding, so each as if alone
        rows = np.flatnonzero(lengths == steps)
        worst = max(worst, max_diff(got[rows], _torch_forecast(forecaster, x[rows, :steps])))
    checks["variable_length"] = worst

    few = x[:2]
    reference = reference_run(proto, ["predicted"], {"frames": few, "lengths": full[:2]})[0]
    checks["reference"] = max_diff(reference, _torch_forecast(forecaster, few))
    return checks
