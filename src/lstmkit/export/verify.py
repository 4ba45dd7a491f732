"""Verification of exported graphs in ONNX Runtime against PyTorch, before anything is written."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.errors import LstmkitError
from lstmkit.export.errors import ExportError

__all__ = ["ort_session", "standardize", "verify_onnx"]

log = logging.getLogger(__name__)


def _verification_inputs(model: LoadedModel, samples: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Raw inputs (N, L, F): ``samples``, else the dataset's first test samples, else random ones."""
    length, features = model.input_shape
    if samples is not None:
        return np.ascontiguousarray(samples, dtype=np.float32)
    name = model.meta.get("data_name")
    if name:
        try:
            from lstmkit.data import load_source

            x = load_source(name, download=False).test.x[:24]
            if x.ndim == 3 and x.shape[-1] == features:
                return np.ascontiguousarray(x, dtype=np.float32)
        except LstmkitError as exc:
            log.info("export: verifying on random inputs (the dataset %s did not load: %s)", name, exc)
    standardizer = model.standardizer
    mean = standardizer.mean if standardizer is not None else np.zeros(features)
    std = standardizer.std if standardizer is not None else np.ones(features)
    steps = length if length is not None else 12
    return (mean + std * rng.standard_normal((24, steps, features))).astype(np.float32)


def standardize(model: LoadedModel, raw: np.ndarray) -> torch.Tensor:
    """Raw inputs (N, L, F) of any length L, standardised as in training, as a float32 tensor."""
    x = np.asarray(raw, dtype=np.float32)
    standardizer = model.standardizer
    if standardizer is not None:
        x = standardizer.transform(x)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def ort_session(proto: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@torch.no_grad()
def verify_onnx(model: LoadedModel, predict_proto: Any, step_proto: Any | None,
                samples: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Run the graphs in ONNX Runtime and PyTorch on the same inputs; the max abs difference of each check.

    Checks: ``fixed_length`` (a full batch), ``variable_length`` (a batch padded with garbage past random
    lengths, against each sequence run alone in PyTorch: this also proves that padding does not leak) and,
    with a step graph, ``step`` (streams fed in uneven chunks, carrying the state, against the per-step
    outputs and final state of one PyTorch pass).
    """
    module = model.module.eval()
    rng = np.random.default_rng(seed)
    x = _verification_inputs(model, samples, rng)
    n, length, _ = x.shape
    min_length = module.front.min_length() if module.front is not None else 1
    if length < min_length:
        raise ExportError(f"export: verification inputs have {length} steps; this model needs at least {min_length}")

    def torch_logits(raw: np.ndarray) -> np.ndarray:
        return module(standardize(model, raw)).numpy()

    def both(logits: np.ndarray) -> np.ndarray:
        return np.concatenate([torch.softmax(torch.from_numpy(logits), -1).numpy(), logits], axis=-1)

    checks = {}
    session = ort_session(predict_proto)
    full = np.full(n, length, dtype=np.int64)
    probs, logits = session.run(["probabilities", "logits"], {"input": x, "lengths": full})
    checks["fixed_length"] = _max_diff(np.concatenate([probs, logits], -1), both(torch_logits(x)))

    # A few distinct lengths (each new shape costs PyTorch's oneDNN kernel a setup), the full one included.
    choices = np.unique([length, min_length, max(min_length, length // 2), max(min_length, length - 1)])
    lengths = rng.choice(choices, size=n)
    lengths[0] = length
    padded = x.copy()
    for i, steps in enumerate(lengths):
        padded[i, steps:] = rng.normal(0.0, 1e3, size=padded[i, steps:].shape)  # garbage that must not leak
    probs, logits = session.run(["probabilities", "logits"], {"input": padded, "lengths": lengths.astype(np.int64)})
    alone = np.zeros_like(logits)
    for steps in np.unique(lengths):  # sequences of one length together: no padding, so each as if alone
        rows = np.flatnonzero(lengths == steps)
        alone[rows] = torch_logits(x[rows, :steps])
    checks["variable_length"] = _max_diff(np.concatenate([probs, logits], -1), both(alone))

    if step_proto is not None:
        # Streams fed in the chunks [0, 1), [1, 3), [3, L), each ending at its own length (at least 4 steps,
        # so that every stream takes part in every chunk), with garbage past the end.
        step = ort_session(step_proto)
        ends = np.maximum(lengths, min(4, length))
        stream = x.copy()
        for i, steps in enumerate(ends):
            stream[i, steps:] = rng.normal(0.0, 1e3, size=stream[i, steps:].shape)
        inputs = standardize(model, x)
        expected = both(module.forward_steps(inputs).numpy())  # (N, L, 2C): causal, so prefix outputs
        _, (want_h, want_c) = module.lstm(inputs, lengths=torch.from_numpy(ends))
        h = np.zeros((module.lstm.num_layers, n, module.lstm.output_size), np.float32)  # proj_size wide, if set
        c = np.zeros((module.lstm.num_layers, n, module.lstm.hidden_size), np.float32)
        worst = 0.0
        bounds = sorted({0, min(1, length), min(3, length), length})
        for start, stop in zip(bounds[:-1], bounds[1:]):
            chunk_lengths = np.minimum(ends - start, stop - start).astype(np.int64)
            probs, logits, h, c = step.run(["probabilities", "logits", "h_n", "c_n"], {
                "input": np.ascontiguousarray(stream[:, start:stop]), "lengths": chunk_lengths, "h0": h, "c0": c})
            got = np.concatenate([probs, logits], -1)
            for i, real in enumerate(chunk_lengths):
                worst = max(worst, _max_diff(got[i, :real], expected[i, start:start + real]))
        checks["step"] = max(worst, _max_diff(h, want_h.numpy()), _max_diff(c, want_c.numpy()))
    return checks
