"""From a ``[data]`` table to ready train/validation/test arrays: load, check, split, standardise."""

from __future__ import annotations

import logging
from pathlib import Path

from lstmkit.config import DataConfig
from lstmkit.data.base import ArrayDataset, SourceData, load_source
from lstmkit.data.transforms import Standardizer, check_finite, split_train_val
from lstmkit.errors import DataError

__all__ = ["load_splits", "apply_standardizer"]

log = logging.getLogger(__name__)


def apply_standardizer(ds: ArrayDataset, standardizer: Standardizer | None) -> ArrayDataset:
    if standardizer is None:
        return ds
    x = standardizer.transform(ds.x)
    mask = ds.step_mask()
    if mask is not None:
        x[~mask] = 0.0  # padding stays zero
    return ds.with_x(x)


def load_splits(config: DataConfig, seed: int) -> tuple[SourceData, ArrayDataset, ArrayDataset | None]:
    """Load ``config.name``, reject empty or non-finite data and hold out validation: ``(source, train, val)``.

    The inputs are raw (not standardised); the test split is ``source.test``. A source that chooses its
    own validation split (``source.val``, as time series do) keeps it; otherwise validation is a random,
    stratified ``val_fraction`` of the training split.
    """
    data_dir = Path(config.data_dir) if config.data_dir else None
    source = load_source(config.name, data_dir=data_dir, download=config.download, config=config)
    for split_name, ds in (("training", source.train), ("test", source.test)):
        if len(ds) == 0:
            raise DataError(f"{config.name}: the {split_name} split is empty")
        check_finite(ds.x, f"{config.name} {split_name} split")
    if source.val is not None:
        check_finite(source.val.x, f"{config.name} validation split")
        return source, source.train, source.val
    train, val = split_train_val(source.train, config.val_fraction, seed)
    return source, train, val
