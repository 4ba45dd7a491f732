"""Verification of exported graphs in ONNX Runtime against PyTorch, before anything is written."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch

from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.errors import LstmkitError
from lstmkit.export.errors import ExportError
from lstmkit.export.parity import (
    Probe,
    ort_session,
    state_shape,
    stream_check,
    whole_checks,
)

__all__ = ["ort_session", "standardize", "verification_inputs", "verify_onnx"]

log = logging.getLogger(__name__)


def verification_inputs(model: LoadedModel, samples: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
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
    x = verification_inputs(model, samples, rng)
    length = x.shape[1]
    min_length = module.min_length()
    if length < min_length:
        raise ExportError(f"export: verification inputs have {length} steps; this model needs at least {min_length}")

    def answers(logits: torch.Tensor) -> np.ndarray:
        return torch.cat([torch.softmax(logits, -1), logits], -1).numpy()  # what the graph gives: probabilities, logits

    probe = Probe(x=x, feeds=lambda raw, lengths: {"input": raw, "lengths": lengths.astype(np.int64)},
                  outputs=["probabilities", "logits"], expected=lambda raw: answers(module(standardize(model, raw))),
                  garbage=lambda shape, r: r.normal(0.0, 1e3, size=shape).astype(np.float32), min_length=min_length)
    checks = whole_checks(predict_proto, probe, rng)
    if step_proto is not None:
        def final_state(raw: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            _, (h, c) = module.lstm(standardize(model, raw), lengths=torch.from_numpy(ends))
            return h.numpy(), c.numpy()

        steps = dataclasses.replace(probe, per_step=True,
                                    expected=lambda raw: answers(module.forward_steps(standardize(model, raw))))
        checks["step"] = stream_check(step_proto, steps, state_shape(module.lstm), final_state, rng)
    return checks
