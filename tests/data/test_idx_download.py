"""Downloading mnist / fashion-mnist into the cache, served by a real http.server on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from lstmkit.data import load_source
from lstmkit.data import idx
from lstmkit.errors import DataError

FILES = [f"{stem}.gz" for stem in idx.IDX_FILES]


class Mirror:
    def __init__(self, url: str, folder: Path, requests: list[str]) -> None:
        self.url, self.folder, self.requests = url, folder, requests


@pytest.fixture
def mirror(tmp_path: Path, make_idx_folder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    """Serve the 4 generated .gz files from tmp_path/mirror; checksums patched to theirs; env points at it."""
    folder = tmp_path / "mirror"
    make_idx_folder(folder, gz=True, seed=3)
    checksums = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in FILES}
    monkeypatch.setitem(idx.CHECKSUMS, "mnist", checksums)
    monkeypatch.setitem(idx.CHECKSUMS, "fashion-mnist", dict(checksums))
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", ())
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # record instead of writing to stderr
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setenv("LSTMKIT_MNIST_MIRROR", url)
    monkeypatch.setenv("LSTMKIT_FASHION_MNIST_MIRROR", url)
    try:
        yield Mirror(url, folder, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.part")) if folder.exists() else []


def test_download_fills_the_cache_and_the_second_load_makes_no_request(mirror: Mirror) -> None:
    source = load_source("mnist")
    assert sorted(mirror.requests) == sorted(f"/{name}" for name in FILES)
    cache = idx.cache_dir("mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted([*FILES, "SHA256SUMS"])
    for name in FILES:
        assert (cache / name).read_bytes() == (mirror.folder / name).read_bytes()
    expected = idx.read_idx(mirror.folder / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(source.train.x, expected)

    again = load_source("mnist")
    assert len(mirror.requests) == 4
    np.testing.assert_array_equal(again.test.y, source.test.y)


def test_cache_folder_follows_lstmkit_cache(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTMKIT_CACHE", str(tmp_path / "elsewhere"))
    load_source("fashion-mnist")
    assert sorted(p.name for p in (tmp_path / "elsewhere" / "fashion-mnist").iterdir()) == sorted([*FILES, "SHA256SUMS"])


def test_only_missing_files_are_downloaded(mirror: Mirror) -> None:
    load_source("mnist")
    (idx.cache_dir("mnist") / "t10k-labels-idx1-ubyte.gz").unlink()
    load_source("mnist")
    assert mirror.requests[4:] == ["/t10k-labels-idx1-ubyte.gz"]


def test_a_dead_mirror_falls_back_to_the_next(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTMKIT_MNIST_MIRROR", f"{_closed_port_url()}, {mirror.url}")
    assert len(load_source("mnist").train) == 6


def test_checksum_mismatch_deletes_the_download(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(idx.CHECKSUMS["mnist"], "train-labels-idx1-ubyte.gz", "0" * 32)
    got = hashlib.md5((mirror.folder / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    with pytest.raises(DataError, match=rf"^mnist: downloaded train-labels-idx1-ubyte\.gz from "
                                        rf"http://127\.0\.0\.1:\d+/train-labels-idx1-ubyte\.gz: "
                                        rf"expected MD5 0{{32}}, got {got}$"):
        load_source("mnist")
    cache = idx.cache_dir("mnist")
    assert not (cache / "train-labels-idx1-ubyte.gz").exists()
    assert _leftovers(cache) == []


def test_http_error_says_the_dataset_could_not_be_downloaded(mirror: Mirror) -> None:
    (mirror.folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"^mnist: the dataset could not be downloaded: t10k-labels-idx1-ubyte\.gz "
                                        r"failed from http://127\.0\.0\.1:\d+/t10k-labels-idx1-ubyte\.gz "
                                        r"\(HTTP Error 404: File not found\); pass --data-dir"):
        load_source("mnist")
    assert _leftovers(idx.cache_dir("mnist")) == []


def test_unreachable_mirror_suggests_data_dir_and_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", ())
    monkeypatch.setenv("LSTMKIT_FASHION_MNIST_MIRROR", _closed_port_url())
    with pytest.raises(DataError, match=r"^fashion-mnist: the dataset could not be downloaded: .*refused.*; "
                                        r"pass --data-dir .*or install the Debian package dataset-fashion-mnist$"):
        load_source("fashion-mnist")


def test_download_off_with_an_empty_cache_is_an_error(mirror: Mirror) -> None:
    with pytest.raises(DataError, match=r"^mnist: expected the 4 IDX files in the cache .*mnist, missing "
                                        r"train-images-idx3-ubyte\.gz, .*t10k-labels-idx1-ubyte\.gz and download "
                                        r"is off; pass --data-dir"):
        load_source("mnist", download=False)
    assert mirror.requests == []


# ---- issue 17 item 11: the cache is checked with SHA-256 on every read; the built-in mirrors are https ----


def test_a_cached_file_modified_after_download_is_refused(mirror: Mirror) -> None:
    load_source("mnist")
    cached = idx.cache_dir("mnist") / "train-labels-idx1-ubyte.gz"
    data = bytearray(cached.read_bytes())
    data[-1] ^= 1
    cached.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"^mnist: cached file {cached}: expected SHA-256 [0-9a-f]{{12}}\.\.\. "
                                        r"\(recorded at download\), got [0-9a-f]{12}\.\.\.; it was modified or "
                                        r"damaged: delete it to download it again$"):
        load_source("mnist")
    cached.unlink()  # the way out the message gives
    assert len(load_source("mnist").train) == 6


def test_a_file_put_in_the_cache_by_hand_is_refused(mirror: Mirror) -> None:
    cache = idx.cache_dir("mnist")
    cache.mkdir(parents=True)
    for name in FILES:
        (cache / name).write_bytes((mirror.folder / name).read_bytes())
    with pytest.raises(DataError, match=r"cached file .*\.gz has no SHA-256 recorded in .*SHA256SUMS"):
        load_source("mnist")
    assert mirror.requests == []


def test_the_built_in_mirrors_are_https_only() -> None:
    for name, urls in idx.MIRRORS.items():
        assert urls and all(url.startswith("https://") for url in urls), (name, urls)
