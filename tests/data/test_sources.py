"""The source registry, ArrayDataset validation, and the digits, mnist and fashion-mnist sources."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data import ArrayDataset, SourceData, available_sources, load_source, read_inputs, register_source
from lstmkit.data import base, idx
from lstmkit.errors import DataError

HERE = Path(__file__).parent
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
# MD5s of the *decompressed* upstream Fashion-MNIST files. Debian re-gzips them, so the .gz MD5s in
# lstmkit.data.idx.CHECKSUMS (upstream's) do not match the Debian files, but the contents must.
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


def _source(name: str, train: ArrayDataset, test: ArrayDataset, labels: list[str]) -> SourceData:
    return SourceData(train, test, labels, image_shape=None, pixel_max=None, name=name)


def _tiny(n: int = 4, y: list[int] | None = None) -> ArrayDataset:
    return ArrayDataset(np.zeros((n, 3, 2)), np.array(y if y is not None else [i % 2 for i in range(n)]))


# ------------------------------------------------------------------------------------------ registry


def test_builtin_sources_are_registered() -> None:
    assert {"digits", "mnist", "fashion-mnist"} <= set(available_sources())
    assert available_sources() == sorted(available_sources())


def test_unknown_source_lists_the_available_ones() -> None:
    with pytest.raises(DataError, match=r"^data source: expected one of .*digits, .*fashion-mnist, .*mnist.*, got 'nope'$"):
        load_source("nope")


def test_registering_a_name_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base._SOURCES._entries, "twice", lambda data_dir, download: None)
    with pytest.raises(ValueError, match="'twice' is already registered"):
        register_source("twice")(lambda data_dir, download: None)


def test_loader_gets_data_dir_as_path_and_download_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def loader(data_dir, download):
        calls.append((data_dir, download))
        return _source("seen", _tiny(), _tiny(), ["a", "b"])

    monkeypatch.setitem(base._SOURCES._entries, "seen", loader)
    load_source("seen", data_dir=str(tmp_path), download=False)
    assert calls == [(tmp_path, False)]


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (_tiny(0), _tiny(), r"^bad: the training split is empty$"),
        (_tiny(), _tiny(0), r"^bad: the test split is empty$"),
        (_tiny(), ArrayDataset(np.zeros((2, 3, 5)), np.zeros(2)),
         r"^bad: expected test samples of the training shape \(3, 2\), got \(3, 5\)$"),
        (_tiny(y=[0, 1, 5, 1]), _tiny(), r"^bad: expected training labels in 0\.\.1 \(2 label names\), got 5$"),
        (_tiny(), _tiny(y=[0, -1, 0, 1]), r"^bad: expected test labels in 0\.\.1 \(2 label names\), got -1$"),
    ],
)
def test_load_source_checks_what_a_loader_returns(monkeypatch: pytest.MonkeyPatch, train: ArrayDataset,
                                                  test: ArrayDataset, message: str) -> None:
    monkeypatch.setitem(base._SOURCES._entries, "bad", lambda data_dir, download: _source("bad", train, test, ["a", "b"]))
    with pytest.raises(DataError, match=message):
        load_source("bad")


def test_data_dir_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^mnist: data_dir .*absent: expected an existing folder, got no such path$"):
        load_source("mnist", data_dir=tmp_path / "absent")


# ------------------------------------------------------------------------------------------ ArrayDataset


def test_array_dataset_converts_dtypes() -> None:
    ds = ArrayDataset(np.ones((2, 3, 4), dtype=np.uint8), np.array([1.0, 0.0]))
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64 and len(ds) == 2


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((3, 4)), np.zeros(3), r"^ArrayDataset x: expected an array of shape \(N, L, F\), got \(3, 4\)$"),
        (np.zeros((3, 4, 1)), np.zeros((3, 1)),
         r"^ArrayDataset y: expected an array of shape \(N,\), or \(N, 4\) for one class per step, got \(3, 1\)$"),
        (np.zeros((3, 4, 1)), np.zeros(2), r"^ArrayDataset: expected as many labels as samples \(3\), got 2$"),
        (np.zeros((2, 4, 1)), np.array([0.5, 1.0]),
         r"^ArrayDataset y: expected integer class indices, got dtype float64$"),
        (np.array([[["a"]]]), np.zeros(1), r"^ArrayDataset x: expected a numeric array, got dtype <U1$"),
    ],
)
def test_array_dataset_rejects_bad_shapes(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ArrayDataset(x, y)


# ------------------------------------------------------------------------------------------ digits


def test_digits_shapes_labels_and_scale() -> None:
    source = load_source("digits")
    assert source.name == "digits"
    assert source.train.x.shape == (1347, 8, 8) and source.test.x.shape == (450, 8, 8)
    assert source.train.x.dtype == np.float32 and source.train.y.dtype == np.int64
    assert source.label_names == [str(d) for d in range(10)]
    assert source.image_shape == (8, 8) and source.pixel_max == 16
    assert source.train.x.min() == 0 and source.train.x.max() == 16


def test_digits_split_is_stratified_and_deterministic() -> None:
    first, second = load_source("digits"), load_source("digits")
    np.testing.assert_array_equal(first.test.x, second.test.x)
    np.testing.assert_array_equal(first.train.y, second.train.y)
    train_counts = np.bincount(first.train.y, minlength=10)
    test_counts = np.bincount(first.test.y, minlength=10)
    assert np.all(np.abs(test_counts - 0.25 * (train_counts + test_counts)) <= 1)
    # Golden: the same split on every machine (StratifiedShuffleSplit, seed 0).
    # Golden, recorded once (scikit-learn 1.9): the split must not move between machines or versions,
    # or saved models would be evaluated on their own training images.
    np.testing.assert_array_equal(first.test.y[:12], [2, 0, 4, 9, 4, 1, 2, 4, 6, 7, 9, 1])


def test_shipped_digits_sample_is_the_first_test_images() -> None:
    sample = read_inputs(HERE.parent.parent / "examples" / "digits_sample.npy", 8, 8)
    np.testing.assert_array_equal(sample, load_source("digits").test.x[: len(sample)])


# ------------------------------------------------------------------------------------------ mnist, fashion-mnist


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_a_data_dir(tmp_path: Path, make_idx_folder, gz: bool) -> None:
    arrays = make_idx_folder(tmp_path / "mnist", gz=gz)
    source = load_source("mnist", data_dir=tmp_path / "mnist", download=False)
    assert source.train.x.shape == (6, 28, 28) and source.test.x.shape == (4, 28, 28)
    assert source.train.x.dtype == np.float32
    np.testing.assert_array_equal(source.train.x, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(source.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert source.label_names == [str(d) for d in range(10)]
    assert source.image_shape == (28, 28) and source.pixel_max == 255


def test_fashion_mnist_label_names(tmp_path: Path, make_idx_folder) -> None:
    make_idx_folder(tmp_path)
    source = load_source("fashion-mnist", data_dir=tmp_path)
    assert source.name == "fashion-mnist"
    assert source.label_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_data_dir_missing_files_is_an_error_even_with_a_full_cache(tmp_path: Path, make_idx_folder) -> None:
    make_idx_folder(idx.cache_dir("mnist"))
    make_idx_folder(tmp_path / "given")
    (tmp_path / "given" / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "given" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"^mnist: expected the 4 IDX files \(gzipped or not\) in .*given, "
                                        r"missing train-labels-idx1-ubyte\.gz, t10k-labels-idx1-ubyte\.gz$"):
        load_source("mnist", data_dir=tmp_path / "given")


def test_label_count_must_match_image_count(tmp_path: Path, make_idx_folder) -> None:
    make_idx_folder(tmp_path)
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match=r"^IDX file .*train-labels-idx1-ubyte\.gz: expected as many labels as "
                                        r"images \(6\), got 5$"):
        load_source("mnist", data_dir=tmp_path)


def test_images_must_be_28_by_28(tmp_path: Path, make_idx_folder) -> None:
    make_idx_folder(tmp_path)
    idx.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((4, 5, 5), dtype=np.uint8))
    with pytest.raises(DataError, match=r"^IDX file .*t10k-images-idx3-ubyte\.gz: expected images of shape "
                                        r"\(28, 28\), got \(5, 5\)$"):
        load_source("mnist", data_dir=tmp_path)


def test_images_and_labels_swapped_are_caught_by_magic(tmp_path: Path, make_idx_folder) -> None:
    make_idx_folder(tmp_path)
    labels = (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(labels)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: expected magic 0x00000803 \(uint8 images\), "
                                        r"got 0x00000801"):
        load_source("mnist", data_dir=tmp_path)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason=f"{DEBIAN_FASHION} (Debian dataset-fashion-mnist) is absent")
def test_fashion_mnist_from_the_debian_package() -> None:
    source = load_source("fashion-mnist", download=False)  # the cache is empty: it must read the Debian folder
    assert source.train.x.shape == (60000, 28, 28) and source.test.x.shape == (10000, 28, 28)
    assert source.train.y.shape == (60000,) and source.test.y.shape == (10000,)
    assert source.train.x.max() == 255 and source.train.x.min() == 0
    np.testing.assert_array_equal(np.bincount(source.train.y), [6000] * 10)
    np.testing.assert_array_equal(source.train.y[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    for stem, expected in FASHION_RAW_MD5.items():
        content = gzip.decompress((DEBIAN_FASHION / f"{stem}.gz").read_bytes())
        assert hashlib.md5(content).hexdigest() == expected, stem


@pytest.mark.parametrize("kwargs, message", [
    (dict(x=np.zeros((2, 3, 1)), y=[0, 1], lengths=[3, 0]), r"ArrayDataset lengths: expected values in 1\.\.3, got 0\.\.3"),
    (dict(x=np.zeros((2, 3, 1)), y=[0, 1], lengths=[3, 4]), r"ArrayDataset lengths: expected values in 1\.\.3, got 3\.\.4"),
    (dict(x=np.zeros((2, 3, 1)), y=[0, 1], lengths=[3.0, 2.0]), r"ArrayDataset lengths: expected integers of shape \(2,\)"),
    (dict(x=np.zeros((2, 3, 1)), y=[0.5, np.nan], targets="values"), "ArrayDataset y: expected finite targets, got 1 NaN/Inf"),
    (dict(x=np.zeros((2, 3, 1)), y=np.zeros((2, 1, 1)), targets="values"), r"expected numeric targets of shape \(N,\) or \(N, K\)"),
    (dict(x=np.zeros((2, 3, 1)), y=[0, 1], targets="labels"), 'ArrayDataset targets: expected "classes" or "values"'),
])
def test_array_dataset_refuses_bad_lengths_and_targets(kwargs, message):
    with pytest.raises(DataError, match=message):
        ArrayDataset(**kwargs)


def test_lengths_and_value_targets_survive_subsetting():
    ds = ArrayDataset(np.zeros((3, 4, 1)), np.array([0.5, 1.5, 2.5]), lengths=np.array([4, 2, 1]), targets="values")
    part = ds.subset(np.array([2, 0]))
    assert part.targets == "values" and part.lengths.tolist() == [1, 4] and part.y.tolist() == [2.5, 0.5]
    assert part.step_mask().tolist() == [[True, False, False, False], [True, True, True, True]]
