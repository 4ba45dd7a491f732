"""The IDX reader and writer: golden bytes, round trips, and every malformed-file error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data import read_idx, write_idx
from lstmkit.errors import DataError


def test_write_idx_golden_bytes(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.array([1, 2, 3], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x01\x02\x03"
    write_idx(tmp_path / "pairs", np.array([[1, -2]], dtype=np.int16))
    assert (tmp_path / "pairs").read_bytes() == (
        b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x02" + b"\x00\x01\xff\xfe"
    )


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_uint8_images_and_labels_round_trip(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", labels)

    got_images = read_idx(tmp_path / f"images-idx3-ubyte{suffix}", expected_magic=0x00000803)
    got_labels = read_idx(tmp_path / f"labels-idx1-ubyte{suffix}", expected_magic=0x00000801)

    assert got_images.dtype == np.uint8 and got_images.shape == (5, 3, 4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] = 7  # a writable copy
    assert (tmp_path / f"images-idx3-ubyte{suffix}").read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_other_dtypes_round_trip_in_native_order(tmp_path: Path, dtype: type) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 12).astype(dtype)
    write_idx(tmp_path / "a.gz", array)
    got = read_idx(tmp_path / "a.gz")
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_gzip_is_recognised_by_content_and_written_deterministically(tmp_path: Path) -> None:
    labels = np.array([4, 2], dtype=np.uint8)
    write_idx(tmp_path / "a.gz", labels)
    write_idx(tmp_path / "b.gz", labels)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    (tmp_path / "no-suffix").write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), labels)


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_wrong_magic_names_the_file_expected_and_got(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match=r"^IDX file .*train-images-idx3-ubyte\.gz: expected magic 0x00000803 "
                                        r"\(uint8 images\), got 0x00000801 \(uint8 labels\)$"):
        read_idx(path, expected_magic=0x00000803)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00", r"expected at least a 4-byte header, got 2 bytes"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x05", r"expected a magic number 0x0000TTDD .*got 0x12340801"),
        (_header(0x07, (1,)) + b"\x05", r"expected a type code in 0x08, .*0x0e, got 0x07"),
        (b"\x00\x00\x08\x00", r"expected 1 to 32 dimensions, got 0"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", r"expected a 16-byte header for 3 dimensions, got 8 bytes"),
        (_header(0x08, (2, 3)) + bytes(5), r"expected 6 data bytes for uint8 of shape \(2, 3\), got 5 \(truncated\)"),
        (_header(0x0B, (2,)) + bytes(5), r"expected 4 data bytes for int16 of shape \(2,\), got 5 \(trailing"),
    ],
)
def test_malformed_files_are_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^IDX file .*bad-idx: {message}"):
        read_idx(path)


# Found by fuzzing (tests/fuzz): sizes were multiplied in int64, so dimensions whose product passes
# 2**63 wrapped (to 0 for four 65536s: the empty data then "matched" and reshape raised ValueError),
# and more than NumPy's 64 dimensions raised ValueError too.


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ((65536,) * 4, r"expected 18446744073709551616 data bytes for uint8 of shape \(65536, 65536, 65536, 65536\), "
                       r"got 0 \(truncated\)$"),
        ((2**32 - 1,) * 3, r"expected 79228162458924105385300197375 data bytes for uint8 .* got 1 \(truncated\)$"),
    ],
)
def test_dimensions_whose_product_overflows_int64(tmp_path: Path, dims: tuple[int, ...], message: str) -> None:
    path = tmp_path / "huge-idx"
    path.write_bytes(_header(0x08, dims) + bytes(0 if dims[0] == 65536 else 1))
    with pytest.raises(DataError, match=rf"^IDX file .*huge-idx: {message}"):
        read_idx(path)


def test_more_dimensions_than_numpy_allows(tmp_path: Path) -> None:
    path = tmp_path / "deep-idx"
    path.write_bytes(_header(0x08, (1,) * 100) + b"\x01")
    with pytest.raises(DataError, match=r"^IDX file .*deep-idx: expected 1 to 32 dimensions, got 100$"):
        read_idx(path)


def test_truncated_gzip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    write_idx(path, np.arange(200, dtype=np.uint8).reshape(10, 20))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"^IDX file .*cut\.gz: expected a valid gzip stream, got a corrupt or "
                                        r"truncated one \(EOFError"):
        read_idx(path)


def test_corrupt_gzip_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.gz"
    content = bytearray(gzip.compress(bytes(range(256)) * 4, mtime=0))
    content[20:30] = b"\xff" * 10
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"^IDX file .*corrupt\.gz: expected a valid gzip stream, got a corrupt"):
        read_idx(path)


def test_missing_file_and_folder_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^IDX file .*absent-idx1-ubyte: expected an existing file, got no such file$"):
        read_idx(tmp_path / "absent-idx1-ubyte")
    with pytest.raises(DataError, match=r"^IDX file .*: expected a file, got a folder$"):
        read_idx(tmp_path)


def test_write_idx_rejects_unsupported_arrays(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^write_idx .*labels: expected an array of dtype uint8, .*got int64$"):
        write_idx(tmp_path / "labels", np.array([1, 2], dtype=np.int64))
    with pytest.raises(DataError, match=r"^write_idx .*scalar: expected an array with 1 to 32 dimensions, got 0$"):
        write_idx(tmp_path / "scalar", np.uint8(3))
