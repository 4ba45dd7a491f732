"""Transforms on in-memory arrays: finiteness checks, per-feature standardisation, train/validation split."""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from lstmkit.data.base import ArrayDataset
from lstmkit.errors import DataError

__all__ = ["check_finite", "Standardizer", "split_train_val"]

log = logging.getLogger(__name__)


def check_finite(x: np.ndarray, what: str = "data") -> None:
    """Raise a DataError naming ``what``, the count and the first index of NaN/Inf values in ``x``.

    Example message: ``data contains 3 NaN/Inf values (first at index (0, 2, 5))``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.inexact):
        return  # integers and booleans are always finite
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise DataError(f"{what} contains {int(bad.sum())} NaN/Inf values (first at index {first})")


class Standardizer:
    """Per-feature standardisation ``(x - mean) / std`` with statistics over all samples and steps.

    For inputs of shape (N, L, F) (or any shape ending in F), ``mean`` and ``std`` have shape (F,).
    A feature whose standard deviation is below ``MIN_STD`` (a constant feature, such as MNIST's
    always-black border column) is only centred: its scale is set to 1, as scikit-learn's
    ``StandardScaler`` does, so that a value unseen in training is not multiplied by a huge factor.

    Example::

        >>> s = Standardizer().fit(train_x)          # (N, L, F)
        >>> z = s.transform(test_x)                  # float32, same shape
        >>> Standardizer.from_dict(json.loads(json.dumps(s.to_dict()))).transform(test_x)
    """

    MIN_STD = 1e-6

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)

    @property
    def num_features(self) -> int:
        self._require_fitted()
        return int(self.mean.shape[0])

    def fit(self, x: np.ndarray, mask: np.ndarray | None = None) -> Standardizer:
        """Compute mean and std per feature (last axis) in float64; returns ``self``.

        ``mask`` (shape ``x.shape[:-1]``, True on real steps) leaves padding out of the statistics.
        """
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[-1] == 0 or x.size == 0:
            raise DataError(f"Standardizer.fit: expected a non-empty array of shape (N, L, F), got {x.shape}")
        check_finite(x, "Standardizer.fit input")
        rows = x.reshape(-1, x.shape[-1]) if mask is None else x[np.asarray(mask, dtype=bool)]  # (N*L, F)
        chunk = 1 << 18
        total = np.zeros(rows.shape[1])
        for start in range(0, rows.shape[0], chunk):
            total += rows[start:start + chunk].sum(axis=0, dtype=np.float64)
        mean = total / rows.shape[0]
        squares = np.zeros(rows.shape[1])
        for start in range(0, rows.shape[0], chunk):
            squares += ((rows[start:start + chunk].astype(np.float64) - mean) ** 2).sum(axis=0)
        std = np.sqrt(squares / rows.shape[0])
        constant = std < self.MIN_STD
        if constant.any():
            log.debug("Standardizer: %d constant feature(s) are only centred", int(constant.sum()))
        std[constant] = 1.0
        self.mean, self.std = mean, std
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise ``x`` (shape (..., F)); returns float32."""
        x = self._check(x, "transform")
        return ((x - self.mean.astype(np.float32)) / self.std.astype(np.float32)).astype(np.float32)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Undo ``transform``: ``z * std + mean``; returns float32."""
        z = self._check(z, "inverse_transform")
        return (z * self.std.astype(np.float32) + self.mean.astype(np.float32)).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        """The statistics as plain lists, JSON-serialisable."""
        self._require_fitted()
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: Any) -> Standardizer:
        """Rebuild from ``to_dict()``'s output; a DataError names what is wrong with ``d``."""
        if not isinstance(d, dict) or set(d) != {"mean", "std"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise DataError(f"standardizer statistics: expected a table with keys 'mean' and 'std', got {got}")
        try:
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("standardizer statistics: expected 'mean' and 'std' to be lists of numbers, "
                            f"got {type(d['mean']).__name__} and {type(d['std']).__name__}") from None
        if mean.ndim != 1 or std.shape != mean.shape or mean.size == 0:
            raise DataError(f"standardizer statistics: expected 'mean' and 'std' lists of equal, non-zero "
                            f"length, got shapes {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise DataError("standardizer statistics: expected finite means and positive finite stds, "
                            f"got mean {mean.tolist()} and std {std.tolist()}")
        return cls(mean, std)

    def _require_fitted(self) -> None:
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer: call fit() or from_dict() before using it")

    def _check(self, x: np.ndarray, method: str) -> np.ndarray:
        self._require_fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 0 or x.shape[-1] != self.mean.shape[0]:
            raise DataError(f"Standardizer.{method}: expected an array with {self.mean.shape[0]} features "
                            f"in its last dimension, got shape {x.shape}")
        return x

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean is None else f"{self.mean.shape[0]} features"
        return f"Standardizer({fitted})"


def split_train_val(ds: ArrayDataset, fraction: float, seed: int) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Hold out ``fraction`` of ``ds`` for validation; returns ``(train, val)``, ``val`` None when 0.

    The split is stratified by label when every class has at least 2 samples and both parts can hold
    every class, otherwise (and for per-step classes) random; either way it depends only on ``seed``.
    Samples keep their order. The validation part has ``ceil(fraction * N)`` samples.

    Raises:
        DataError: if ``fraction`` is not in [0, 1) or the split would leave the training part empty.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 <= fraction < 1:
        raise DataError(f"validation fraction: expected a number in [0, 1), got {fraction!r}")
    n = len(ds)
    if n == 0:
        raise DataError("split_train_val: the training split is empty")
    if fraction == 0:
        return ds, None
    n_val = math.ceil(fraction * n)
    if n_val >= n:
        raise DataError(f"validation fraction {fraction}: expected to leave at least one training sample, "
                        f"got an empty training split ({n} samples, {n_val} held out)")
    stratify = False
    per_sample_classes = ds.targets == "classes" and ds.y.ndim == 1  # per-step classes: a random split
    if per_sample_classes:
        classes, counts = np.unique(ds.y, return_counts=True)
        stratify = bool(counts.min() >= 2 and n_val >= len(classes) and n - n_val >= len(classes))
    if per_sample_classes and not stratify:
        log.info("split_train_val: a class has fewer than 2 samples or a split is smaller than %d classes; "
                 "splitting at random", len(classes))
    train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed,
                                          stratify=ds.y if stratify else None)
    train_idx.sort()
    val_idx.sort()
    return ds.subset(train_idx), ds.subset(val_idx)
