"""The template source registers on import and loads, generated or from a data_dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lstmkit.data.template  # noqa: F401  (registers "my-source")
from lstmkit.data import available_sources, load_source
from lstmkit.errors import DataError


def test_template_source_generates_data() -> None:
    assert "my-source" in available_sources()
    source = load_source("my-source")
    assert source.train.x.shape == (160, 20, 1) and source.test.x.shape == (40, 20, 1)
    assert source.label_names == ["falling", "rising"]
    rising = source.train.x[source.train.y == 1]
    assert np.all(rising[:, -5:].mean(axis=1) > rising[:, :5].mean(axis=1) - 0.5)


def test_template_source_reads_a_data_dir(tmp_path: Path) -> None:
    x = np.zeros((3, 5, 2), dtype=np.float32)
    np.savez(tmp_path / "my-source.npz", x_train=x, y_train=[0, 1, 0], x_test=x[:2], y_test=[1, 1])
    source = load_source("my-source", data_dir=tmp_path)
    assert source.train.x.shape == (3, 5, 2) and source.test.y.tolist() == [1, 1]


def test_template_source_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^my-source: expected my-source\.npz in .*, got no such file$"):
        load_source("my-source", data_dir=tmp_path)
