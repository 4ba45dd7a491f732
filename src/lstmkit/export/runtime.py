"""What the seq2seq and frames verifications share beside ``verify.ort_session``: running a graph in
``onnx.reference`` (the ONNX specification's own Python evaluator, an independent second opinion), the max abs
difference of two arrays, and refusing an export whose checks disagree."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["max_diff", "reference_run", "refuse_disagreement"]


def reference_run(proto: Any, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``outputs`` of ``proto`` on ``feeds`` in ``onnx.reference.ReferenceEvaluator``.

    Its ``LSTM`` ignores ``sequence_lens`` and ``activations``, so callers run it only on full-length inputs of
    models with the default activations.
    """
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(proto).run(outputs, feeds)


def max_diff(a: Any, b: Any) -> float:
    """The largest absolute difference of two arrays (NaN anywhere makes it NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"verification compared shapes {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def refuse_disagreement(checks: dict[str, float], tolerance: float, target: str) -> None:
    """Raise an ``ExportError`` naming the worst check when any exceeds ``tolerance`` (or is NaN)."""
    from lstmkit.export.errors import ExportError

    worst_check = max(checks, key=lambda k: -np.inf if np.isnan(checks[k]) else checks[k])
    worst_check = next((k for k, v in checks.items() if np.isnan(v)), worst_check)
    if not checks[worst_check] <= tolerance:
        raise ExportError(
            f"export: ONNX Runtime and PyTorch disagree: max abs difference {checks[worst_check]:.3g} in the "
            f"{worst_check} check exceeds the tolerance {tolerance:g} (checks: "
            + ", ".join(f"{k} {v:.3g}" for k, v in checks.items()) + f"); {target} was not written")
