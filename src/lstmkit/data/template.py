"""Template: how to add a data source to the registry.

Copy this file, rename the source, and import your module before loading (for example from your own
script); it is not imported by ``lstmkit.data``, so ``"my-source"`` exists only once you import it::

    import lstmkit.data.template  # registers "my-source"
    from lstmkit.data import load_source

    source = load_source("my-source")            # or load_source("my-source", data_dir="path/to/folder")
    source.train.x.shape                          # (N, L, F) = (160, 20, 1)

A loader receives ``data_dir`` (a folder the user pointed at, or None) and ``download`` (whether it may
fetch missing files) and returns a ``SourceData``. Raise ``lstmkit.errors.DataError`` for anything the
user can fix, naming the thing, the expectation and what was received. ``load_source`` then checks that
both splits are non-empty, have the same (L, F) and hold labels in ``0..len(label_names) - 1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmkit.data.base import ArrayDataset, SourceData, register_source
from lstmkit.errors import DataError

SEQUENCE_LENGTH = 20


def _rising_or_falling(n: int, rng: np.random.Generator) -> ArrayDataset:
    """Noisy ramps of one feature: class 0 falls, class 1 rises."""
    y = rng.integers(0, 2, size=n)
    t = np.linspace(0.0, 1.0, SEQUENCE_LENGTH)
    slope = np.where(y == 1, 1.0, -1.0)[:, None] * rng.uniform(0.5, 2.0, size=(n, 1))
    x = slope * t[None, :] + rng.normal(0.0, 0.3, size=(n, SEQUENCE_LENGTH))  # (N, L)
    return ArrayDataset(x[:, :, None].astype(np.float32), y)  # (N, L, 1)


@register_source("my-source")
def load_my_source(data_dir: Path | None, download: bool) -> SourceData:
    """Read ``data_dir/my-source.npz`` (x_train, y_train, x_test, y_test) if given, else generate data."""
    if data_dir is not None:
        path = data_dir / "my-source.npz"
        if not path.is_file():
            raise DataError(f"my-source: expected {path.name} in {data_dir}, got no such file")
        with np.load(path, allow_pickle=False) as f:
            train = ArrayDataset(f["x_train"], f["y_train"])
            test = ArrayDataset(f["x_test"], f["y_test"])
    else:
        rng = np.random.default_rng(0)  # fixed, so the split is the same everywhere
        train, test = _rising_or_falling(160, rng), _rising_or_falling(40, rng)
    return SourceData(train=train, test=test, label_names=["falling", "rising"],
                      image_shape=None, pixel_max=None, name="my-source")
