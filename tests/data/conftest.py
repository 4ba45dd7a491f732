"""Shared fixtures for the data tests: an offline environment and tiny generated IDX files."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
import pytest

from lstmkit.data import write_idx
from lstmkit.data.idx import IDX_FILES, MIRROR_ENV

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the cache into tmp_path, the mirrors at a dead local port, and refuse any non-local URL."""
    monkeypatch.setenv("LSTMKIT_CACHE", str(tmp_path / "cache"))
    for var in MIRROR_ENV.values():
        monkeypatch.setenv(var, "http://127.0.0.1:9/")
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        full = url if isinstance(url, str) else url.full_url
        if urlsplit(full).hostname != "127.0.0.1":
            raise AssertionError(f"a test tried to reach {full}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


@pytest.fixture
def make_idx_folder() -> Callable[..., dict[str, np.ndarray]]:
    """Write the 4 standard IDX files (6 train, 4 test 28x28 images) into a folder; return the arrays."""

    def make(folder: Path, gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        arrays = {
            "train-images-idx3-ubyte": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": np.array([0, 1, 2, 9, 1, 0], dtype=np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": np.array([3, 9, 0, 1], dtype=np.uint8),
        }
        assert set(arrays) == set(IDX_FILES)
        folder.mkdir(parents=True, exist_ok=True)
        for stem, array in arrays.items():
            write_idx(folder / (f"{stem}.gz" if gz else stem), array)
        return arrays

    return make
