"""In-memory user data to an ``ArrayDataset``: 3-D arrays, lists of variable-length sequences, long tables.

Example::

    ds = as_dataset([np.ones((5, 3)), np.ones((9, 3))], y=[0, 1])   # padded to (2, 9, 3), lengths [5, 9]
    ds.lengths                                                     # array([5, 9])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lstmkit.data.base import ArrayDataset
from lstmkit.errors import DataError

__all__ = ["as_dataset", "pad_sequences", "from_long_table"]


def pad_sequences(sequences: Sequence[Any], what: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad 2-D sequences ``(L_i, F)`` (or 1-D ``(L_i,)``, one feature) at the end into ``(N, max L, F)``.

    Returns the padded array and the lengths ``(N,)``.

    Raises:
        DataError: for an empty list, an empty sequence, or sequences that disagree in features.
    """
    if len(sequences) == 0:
        raise DataError(f"{what}: expected at least one sequence, got an empty list")
    arrays = []
    for i, seq in enumerate(sequences):
        try:
            a = np.asarray(seq, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what}[{i}]: expected a numeric array of shape (L, F), got {exc}") from None
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] == 0:
            raise DataError(f"{what}[{i}]: expected a non-empty array of shape (L, F), got {a.shape}")
        arrays.append(a)
    features = arrays[0].shape[1]
    for i, a in enumerate(arrays):
        if a.shape[1] != features:
            raise DataError(f"{what}[{i}]: expected {features} features per step (as {what}[0]), got {a.shape[1]}")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    padded = np.zeros((len(arrays), int(lengths.max()), features), dtype=np.float32)  # (N, L, F)
    for i, a in enumerate(arrays):
        padded[i, : len(a)] = a
    return padded, lengths


def from_long_table(frame: Any, id_col: str = "id", time_col: str = "time",
                    feature_cols: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """A long-format table (one row per sample id and time step) to padded sequences.

    Args:
        frame: a pandas DataFrame with an id column, a time column and feature columns.
        feature_cols: the feature columns; default every column except id and time.

    Returns:
        ``(x (N, L, F), lengths (N,), ids)``, with samples in order of first appearance and steps sorted
        by time.
    """
    missing = [c for c in (id_col, time_col) if c not in frame.columns]
    if missing:
        raise DataError(f"long table: expected columns {id_col!r} and {time_col!r}, missing {missing}; "
                        f"got columns {list(frame.columns)}")
    features = list(feature_cols) if feature_cols is not None else [
        c for c in frame.columns if c not in (id_col, time_col)]
    if not features:
        raise DataError(f"long table: expected at least one feature column besides {id_col!r} and {time_col!r}")
    unknown = [c for c in features if c not in frame.columns]
    if unknown:
        raise DataError(f"long table: feature columns {unknown} are not in the table {list(frame.columns)}")
    ids = list(dict.fromkeys(frame[id_col].tolist()))
    ordered = frame.sort_values([time_col], kind="stable")
    groups = {key: group[features].to_numpy(dtype=np.float32) for key, group in ordered.groupby(id_col, sort=False)}
    x, lengths = pad_sequences([groups[i] for i in ids], what="long table")
    return x, lengths, ids


def as_dataset(x: Any, y: Any, lengths: Any = None, targets: str | None = None) -> ArrayDataset:
    """An ``ArrayDataset`` from a 3-D array ``(N, L, F)`` or a list of 2-D arrays ``(L_i, F)``.

    ``targets`` is ``"classes"`` or ``"values"``; by default integer ``y`` means classes and float ``y``
    means values.
    """
    if isinstance(x, ArrayDataset):
        return x
    if isinstance(x, (list, tuple)):
        x, lengths = pad_sequences(x)
    else:
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[:, :, None]  # (N, L) univariate
    y = np.asarray(y)
    if targets is None:
        targets = "classes" if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ else "values"
    return ArrayDataset(x, y, None if lengths is None else np.asarray(lengths), targets)
