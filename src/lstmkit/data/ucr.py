"""UCR/UEA time-series classification: the archives bundled with ``aeon``, and the user's own files.

Bundled sources (``pip install lstmkit[aeon]``; no download, the files ship inside the aeon wheel):

=======================  =====================  ====================================  =====
source                   archive name           series                                 classes
=======================  =====================  ====================================  =====
``japanese-vowels``      JapaneseVowels         270 train / 370 test, 12 LPC features, 9 speakers
                                                lengths 7..29 (speech)
``basic-motions``        BasicMotions           40 / 40, 6 features, length 100        4 (sensors)
``gunpoint``             GunPoint               50 / 150, 1 feature, length 150        2 (motion)
``arrowhead``            ArrowHead              36 / 175, 1 feature, length 251        3 (shape outlines)
``italy-power-demand``   ItalyPowerDemand       67 / 1029, 1 feature, length 24        2 (power use)
=======================  =====================  ====================================  =====

Each source reads ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` from ``data_dir`` when one is given, else from
aeon's bundled data folder (found without importing aeon). The archive's own train/test split is kept.

The configurable source ``ucr`` reads the user's files named by ``[data] path``:

- ``path = "data/Wafer_{split}.ts"``: ``{split}`` is replaced by ``TRAIN`` and ``TEST``;
- ``path = "data/Wafer_TRAIN.ts"``: the test file is the same name with ``_TEST``;
- the same two forms with ``.csv``: long-format CSV (``id``, ``time``, features..., ``label``).

Series of different lengths are zero-padded at the end and carry their ``lengths``, so the padding
never reaches the model's answer. Class indices follow the file's ``@classLabel`` order (sorted labels
for CSV); ``label_names`` holds them.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from lstmkit.data.base import ArrayDataset, SourceData, register_source
from lstmkit.data.tsfile import TimeSeriesFile, read_long_csv, read_ts
from lstmkit.errors import DataError

__all__ = ["BUNDLED", "aeon_data_dir", "load_ucr_files", "ucr_split_paths"]

log = logging.getLogger(__name__)

BUNDLED = {
    "japanese-vowels": "JapaneseVowels",
    "basic-motions": "BasicMotions",
    "gunpoint": "GunPoint",
    "arrowhead": "ArrowHead",
    "italy-power-demand": "ItalyPowerDemand",
}
"""Registered source name -> archive name of the UCR/UEA datasets bundled with aeon."""


def aeon_data_dir() -> Path | None:
    """aeon's bundled data folder (``aeon/datasets/data``), or None when aeon is not installed.

    Found from the package's location, without importing aeon (which is slow and pulls in numba).
    """
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read(path: Path) -> TimeSeriesFile:
    return read_long_csv(path) if path.suffix.lower() == ".csv" else read_ts(path)


def _to_datasets(name: str, train: TimeSeriesFile, test: TimeSeriesFile, train_path: Path,
                 test_path: Path) -> SourceData:
    """Pad both splits to one length, map labels to indices and build the ``SourceData``."""
    if train.x.shape[2] != test.x.shape[2]:
        raise DataError(f"{name}: {test_path} has {test.x.shape[2]} dimensions, but {train_path} has "
                        f"{train.x.shape[2]}")
    label_names = list(train.class_labels)
    for label in test.class_labels:
        if label not in label_names:
            label_names.append(label)
    index = {label: i for i, label in enumerate(label_names)}
    length = max(train.x.shape[1], test.x.shape[1])
    variable = bool((train.lengths != length).any() or (test.lengths != length).any())

    def dataset(f: TimeSeriesFile) -> ArrayDataset:
        x = np.zeros((len(f.labels), length, f.x.shape[2]), dtype=np.float32)  # (N, L, F)
        x[:, : f.x.shape[1]] = f.x
        y = np.array([index[label] for label in f.labels], dtype=np.int64)
        return ArrayDataset(x, y, f.lengths if variable else None, "classes")

    return SourceData(train=dataset(train), test=dataset(test), label_names=label_names, image_shape=None,
                      pixel_max=None, name=name)


def load_ucr_files(name: str, train_path: Path, test_path: Path) -> SourceData:
    """Read a train and a test file (``.ts`` or long-format ``.csv``) into a ``SourceData`` named ``name``."""
    return _to_datasets(name, _read(train_path), _read(test_path), train_path, test_path)


def ucr_split_paths(path: str) -> tuple[Path, Path]:
    """The train and test files that ``[data] path`` names (see the module docstring).

    Raises:
        DataError: when the path has neither ``{split}`` nor ``_TRAIN`` in its file name, or is not a
            ``.ts`` or ``.csv`` file.
    """
    p = Path(path).expanduser()
    if p.suffix.lower() not in (".ts", ".csv"):
        raise DataError(f'ucr: [data] path {path!r}: expected a .ts or .csv file, got "{p.suffix or "no suffix"}"')
    if "{split}" in p.name:
        return p.with_name(p.name.replace("{split}", "TRAIN")), p.with_name(p.name.replace("{split}", "TEST"))
    if "_TRAIN" in p.stem:
        return p, p.with_name(p.name.replace("_TRAIN", "_TEST"))
    raise DataError(f"ucr: [data] path {path!r}: expected a file name with {{split}} (e.g. Wafer_{{split}}.ts) "
                    "or ending in _TRAIN.ts / _TRAIN.csv, so the test file can be found")


@register_source("ucr", configurable=True)
def load_ucr(data_dir: Path | None, download: bool, config) -> SourceData:
    """The user's UCR/UEA-style files named by ``[data] path`` (relative paths start at ``data_dir``)."""
    if not config.path:
        raise DataError('ucr: expected [data] path naming the files, e.g. path = "data/Wafer_{split}.ts", got none')
    train_path, test_path = ucr_split_paths(config.path)
    if data_dir is not None and not train_path.is_absolute():
        train_path, test_path = data_dir / train_path, data_dir / test_path
    return load_ucr_files("ucr", train_path, test_path)


def _bundled_loader(name: str, archive: str):
    def load(data_dir: Path | None, download: bool) -> SourceData:
        folder = data_dir
        if folder is None:
            bundled = aeon_data_dir()
            if bundled is None:
                raise DataError(f"{name}: the {archive} files ship with aeon, which is not installed; "
                                f"install it with: pip install 'lstmkit[aeon]' (or pass --data-dir with "
                                f"{archive}_TRAIN.ts and {archive}_TEST.ts)")
            folder = bundled / archive
        train_path, test_path = folder / f"{archive}_TRAIN.ts", folder / f"{archive}_TEST.ts"
        for path in (train_path, test_path):
            if not path.is_file():
                raise DataError(f"{name}: expected {path.name} in {folder}, got no such file")
        return load_ucr_files(name, train_path, test_path)

    load.__name__ = f"load_{name.replace('-', '_')}"
    load.__doc__ = f"The UCR/UEA {archive} dataset, read from aeon's bundled files (or ``data_dir``)."
    return load


for _name, _archive in BUNDLED.items():
    register_source(_name)(_bundled_loader(_name, _archive))
