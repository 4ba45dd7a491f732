"""What every data source returns, and the registry that maps a source name to its loader.

A source is a function ``(data_dir, download) -> SourceData`` registered with ``@register_source(name)``;
``load_source(name)`` finds it, runs it and checks what it returned. See ``lstmkit/data/template.py``
for how to add one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from lstmkit.errors import DataError
from lstmkit.registry import Registry

__all__ = ["ArrayDataset", "SourceData", "register_source", "load_source", "available_sources", "IGNORE_INDEX"]

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""The per-step class target of a padded step: no loss, no metric (``torch.nn.CrossEntropyLoss``'s default)."""


@dataclass
class ArrayDataset:
    """Sequences and their targets, held in memory.

    Attributes:
        x: float32 array of shape (N, L, F): N samples of L steps with F features each. Other numeric
            dtypes are converted to float32. Shorter sequences are zero-padded at the end.
        y: the targets. For ``targets="classes"``, int64 class indices of shape (N,) (integer-valued floats
            are converted), or of shape (N, L) for one class per step (tagging, language models), where
            padded steps hold ``IGNORE_INDEX``; for ``targets="values"``, float32 values of shape (N,) or (N, K).
        lengths: int64 array of shape (N,) with each sample's real number of steps (1..L), or None when
            every sample has all L steps. Steps past a sample's length are padding and never read.
        targets: ``"classes"`` for classification, ``"values"`` for regression and forecasting.

    Raises:
        DataError: if ``x`` is not 3-D, the sample counts differ, a label is not an integer, a value is
            not finite, or a length is outside 1..L.
    """

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None
    targets: Literal["classes", "values"] = "classes"

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        if x.ndim != 3:
            raise DataError(f"ArrayDataset x: expected an array of shape (N, L, F), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"ArrayDataset x: expected a numeric array, got dtype {x.dtype}")
        if self.targets not in ("classes", "values"):
            raise DataError(f'ArrayDataset targets: expected "classes" or "values", got {self.targets!r}')
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise DataError(
                f"ArrayDataset: expected as many {'labels' if self.targets == 'classes' else 'targets'} "
                f"as samples ({x.shape[0]}), got {0 if y.ndim == 0 else y.shape[0]}"
            )
        if self.targets == "classes":
            if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] != x.shape[1]):
                raise DataError(f"ArrayDataset y: expected an array of shape (N,), or (N, {x.shape[1]}) for one "
                                f"class per step, got {y.shape}")
            if not np.issubdtype(y.dtype, np.integer):
                if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y) & (y == np.round(y))):
                    raise DataError(f"ArrayDataset y: expected integer class indices, got dtype {y.dtype}")
            y = y.astype(np.int64, copy=False)
        else:
            if y.ndim > 2 or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
                raise DataError(f"ArrayDataset y: expected numeric targets of shape (N,) or (N, K), "
                                f"got {y.dtype} {y.shape}")
            y = y.astype(np.float32, copy=False)
            if not np.all(np.isfinite(y)):
                raise DataError(f"ArrayDataset y: expected finite targets, got {int((~np.isfinite(y)).sum())} NaN/Inf")
        if self.lengths is not None:
            lengths = np.asarray(self.lengths)
            if lengths.shape != (x.shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
                raise DataError(f"ArrayDataset lengths: expected integers of shape ({x.shape[0]},), "
                                f"got {lengths.dtype} {lengths.shape}")
            if lengths.size and (lengths.min() < 1 or lengths.max() > x.shape[1]):
                raise DataError(f"ArrayDataset lengths: expected values in 1..{x.shape[1]}, "
                                f"got {int(lengths.min())}..{int(lengths.max())}")
            self.lengths = lengths.astype(np.int64, copy=False)
        self.x = x.astype(np.float32, copy=False)
        self.y = y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: np.ndarray) -> ArrayDataset:
        """The samples at ``index`` (an integer array or a slice), with their lengths and target kind."""
        lengths = None if self.lengths is None else self.lengths[index]
        return ArrayDataset(self.x[index], self.y[index], lengths, self.targets)

    def with_x(self, x: np.ndarray) -> ArrayDataset:
        """The same samples with transformed inputs ``x`` (same N and L)."""
        return ArrayDataset(x, self.y, self.lengths, self.targets)

    def step_mask(self) -> np.ndarray | None:
        """Boolean (N, L): True on real steps, False on padding; None when there is no padding."""
        if self.lengths is None:
            return None
        return np.arange(self.x.shape[1])[None, :] < self.lengths[:, None]


@dataclass
class SourceData:
    """A dataset as a source delivers it: a fixed train/test split plus what describes the samples.

    Attributes:
        train: the training split (validation is held out of it later, by ``split_train_val``, unless the
            source gives ``val``).
        test: the test split, never used for training or model selection.
        label_names: one name per class; ``y`` values index this list. Empty for ``targets="values"``.
        image_shape: ``(rows, cols)`` when each sample is an image read row by row (then L = rows,
            F = cols); ``None`` for sequences that are not images.
        pixel_max: the raw scale of pixel values (16 for digits, 255 for MNIST), used to bring a user's
            0..255 image onto the training scale; ``None`` for non-images.
        name: the registered source name.
        meta: JSON-serialisable preprocessing that turns a user's raw input into ``x`` (such as a text
            source's tokenizer and vocabulary, fitted on the training split); a run saves it in the model
            folder's ``meta.json``. Empty for sources whose inputs are already numbers.
        model_settings: ``[model]`` keys that the data decides (such as ``vocab_size``); a run sets them in
            its config before building the network. Empty for most sources.
        val: a validation split chosen by the source itself, or None to hold one out of ``train`` at random
            (``split_train_val``). Time series use it: their validation windows are the latest ones.
        forecast: for forecasting sources, the ``lstmkit.data.series.ForecastSpec`` (raw series, split
            points, scaling) that turns predictions back into values and scores them against baselines.
    """

    train: ArrayDataset
    test: ArrayDataset
    label_names: list[str]
    image_shape: tuple[int, int] | None
    pixel_max: float | None
    name: str
    meta: dict[str, Any] = field(default_factory=dict)
    model_settings: dict[str, Any] = field(default_factory=dict)
    val: ArrayDataset | None = None
    forecast: Any = None


Loader = Callable[..., SourceData]
_SOURCES: Registry[Loader] = Registry("data source", DataError)
_CONFIGURABLE: set[str] = set()


def register_source(name: str, configurable: bool = False) -> Callable[[Loader], Loader]:
    """Decorator that registers a loader ``(data_dir: Path | None, download: bool) -> SourceData``.

    A ``configurable`` loader also receives the whole ``[data]`` table as a third argument,
    ``(data_dir, download, config: DataConfig)``, for settings such as ``path``, ``length`` or ``samples``
    (generated tasks, user files).

    Example::

        @register_source("my-source")
        def load_my_source(data_dir, download):
            ...
            return SourceData(train, test, label_names, image_shape=None, pixel_max=None, name="my-source")
    """
    if configurable:
        _CONFIGURABLE.add(name)
    return _SOURCES.register(name)


def available_sources() -> list[str]:
    """The names of the registered data sources, sorted."""
    return _SOURCES.names()


def load_source(name: str, data_dir: str | Path | None = None, download: bool = True,
                config: Any = None) -> SourceData:
    """Load the registered source ``name`` and check that what it returned is usable.

    Args:
        name: a name from ``available_sources()``.
        data_dir: a folder holding the source's files; when given, a source that reads files looks
            only there. Sources that need no files ignore it.
        download: whether a source may download missing files into its cache.
        config: the ``[data]`` table (``DataConfig``) for configurable sources; defaults when None.

    Raises:
        DataError: for an unknown name, a ``data_dir`` that is not a folder, or a source whose splits are
            empty, disagree in shape, or hold labels outside ``label_names``.
    """
    loader = _SOURCES.get(name)
    folder = None if data_dir is None else Path(data_dir).expanduser()
    if folder is not None and not folder.is_dir():
        raise DataError(f"{name}: data_dir {folder}: expected an existing folder, got "
                        f"{'a file' if folder.exists() else 'no such path'}")
    if name in _CONFIGURABLE:
        if config is None:
            from lstmkit.config import DataConfig

            config = DataConfig(name=name)
        source = loader(folder, download, config)
    else:
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
    if source.train.targets != source.test.targets:
        raise DataError(f"{name}: the training and test splits disagree on their targets "
                        f"({source.train.targets} and {source.test.targets})")
    if source.train.targets == "values":
        return
    classes = len(source.label_names)
    for split_name, ds in (("training", source.train), ("test", source.test)):
        labels = ds.y[ds.y != IGNORE_INDEX] if ds.y.ndim == 2 else ds.y
        if labels.size == 0:
            raise DataError(f"{name}: the {split_name} split has no labelled steps")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise DataError(f"{name}: expected {split_name} labels in 0..{classes - 1} "
                            f"({classes} label names), got {bad}")
