"""What every data source returns, and the registry that maps a source name to its loader.

A source is a function ``(data_dir, download) -> SourceData`` registered with ``@register_source(name)``;
``load_source(name)`` finds it, runs it and checks what it returned. See ``lstmkit/data/template.py``
for how to add one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lstmkit.errors import DataError
from lstmkit.registry import Registry

__all__ = ["ArrayDataset", "SourceData", "register_source", "load_source", "available_sources"]

log = logging.getLogger(__name__)


@dataclass
class ArrayDataset:
    """Fixed-length sequences and their class labels, held in memory.

    Attributes:
        x: float32 array of shape (N, L, F): N samples of L steps with F features each. Other numeric
            dtypes are converted to float32.
        y: int64 array of shape (N,): the class index of each sample. Integer-valued floats are converted.

    Raises:
        DataError: if ``x`` is not 3-D, ``y`` is not 1-D, their sample counts differ, or a label is not
            an integer.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        if x.ndim != 3:
            raise DataError(f"ArrayDataset x: expected an array of shape (N, L, F), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"ArrayDataset x: expected a numeric array, got dtype {x.dtype}")
        if y.ndim != 1:
            raise DataError(f"ArrayDataset y: expected an array of shape (N,), got {y.shape}")
        if y.shape[0] != x.shape[0]:
            raise DataError(
                f"ArrayDataset: expected as many labels as samples ({x.shape[0]}), got {y.shape[0]}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y) & (y == np.round(y))):
                raise DataError(f"ArrayDataset y: expected integer class indices, got dtype {y.dtype}")
        self.x = x.astype(np.float32, copy=False)
        self.y = y.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class SourceData:
    """A dataset as a source delivers it: a fixed train/test split plus what describes the samples.

    Attributes:
        train: the training split (validation is held out of it later, by ``split_train_val``).
        test: the test split, never used for training or model selection.
        label_names: one name per class; ``y`` values index this list.
        image_shape: ``(rows, cols)`` when each sample is an image read row by row (then L = rows,
            F = cols); ``None`` for sequences that are not images.
        pixel_max: the raw scale of pixel values (16 for digits, 255 for MNIST), used to bring a user's
            0..255 image onto the training scale; ``None`` for non-images.
        name: the registered source name.
    """

    train: ArrayDataset
    test: ArrayDataset
    label_names: list[str]
    image_shape: tuple[int, int] | None
    pixel_max: float | None
    name: str


Loader = Callable[[Path | None, bool], SourceData]
_SOURCES: Registry[Loader] = Registry("data source", DataError)


def register_source(name: str) -> Callable[[Loader], Loader]:
    """Decorator that registers a loader ``(data_dir: Path | None, download: bool) -> SourceData``.

    Example::

        @register_source("my-source")
        def load_my_source(data_dir, download):
            ...
            return SourceData(train, test, label_names, image_shape=None, pixel_max=None, name="my-source")
    """
    return _SOURCES.register(name)


def available_sources() -> list[str]:
    """The names of the registered data sources, sorted."""
    return _SOURCES.names()


def load_source(name: str, data_dir: str | Path | None = None, download: bool = True) -> SourceData:
    """Load the registered source ``name`` and check that what it returned is usable.

    Args:
        name: a name from ``available_sources()``.
        data_dir: a folder holding the source's files; when given, a source that reads files looks
            only there. Sources that need no files ignore it.
        download: whether a source may download missing files into its cache.

    Raises:
        DataError: for an unknown name, a ``data_dir`` that is not a folder, or a source whose splits are
            empty, disagree in shape, or hold labels outside ``label_names``.
    """
    loader = _SOURCES.get(name)
    folder = None if data_dir is None else Path(data_dir).expanduser()
    if folder is not None and not folder.is_dir():
        raise DataError(f"{name}: data_dir {folder}: expected an existing folder, got "
                        f"{'a file' if folder.exists() else 'no such path'}")
    source = loader(folder, download)
    _check_source(name, source)
    log.debug("%s: %d train and %d test samples of shape %s", name, len(source.train), len(source.test),
              tuple(source.train.x.shape[1:]))
    return source


def _check_source(name: str, source: SourceData) -> None:
    if not isinstance(source, SourceData):
        raise TypeError(f"data source {name!r}: loader returned {type(source).__name__}, not SourceData")
    for split_name, ds in (("training", source.train), ("test", source.test)):
        if len(ds) == 0:
            raise DataError(f"{name}: the {split_name} split is empty")
    if source.train.x.shape[1:] != source.test.x.shape[1:]:
        raise DataError(f"{name}: expected test samples of the training shape {source.train.x.shape[1:]}, "
                        f"got {source.test.x.shape[1:]}")
    classes = len(source.label_names)
    for split_name, ds in (("training", source.train), ("test", source.test)):
        low, high = int(ds.y.min()), int(ds.y.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise DataError(f"{name}: expected {split_name} labels in 0..{classes - 1} "
                            f"({classes} label names), got {bad}")
