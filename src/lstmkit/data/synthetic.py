"""Generated long-time-lag tasks from Hochreiter & Schmidhuber (1997).

The adding problem: each step carries a value ``u_t ~ U(0, 1)`` and a marker ``m_t``; exactly two steps
are marked, one in the first half and one in the second half of the sequence, and the target is the sum
of the two marked values, ``y = sum_t m_t u_t``. Predicting the mean (1.0) gives an MSE of about 1/6, so
an MSE below 0.01 means the network has learned to carry the first marked value across ~L/2 steps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adding_problem"]


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` adding-problem sequences of ``length`` steps: inputs ``(n, length, 2)``, targets ``(n,)``."""
    if length < 2:
        raise ValueError(f"adding_problem: expected length >= 2, got {length}")
    values = rng.uniform(0.0, 1.0, size=(n, length)).astype(np.float32)
    markers = np.zeros((n, length), dtype=np.float32)
    half = length // 2
    rows = np.arange(n)
    markers[rows, rng.integers(0, half, size=n)] = 1.0
    markers[rows, rng.integers(half, length, size=n)] = 1.0
    x = np.stack([values, markers], axis=-1)  # (n, L, 2)
    y = (values * markers).sum(axis=1)
    return x, y.astype(np.float32)
