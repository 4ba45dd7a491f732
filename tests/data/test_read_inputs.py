"""read_inputs: .npy, CSV (file and stdin) and image files, and each rejected input."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lstmkit.data import read_inputs
from lstmkit.errors import DataError

L, F = 4, 3  # a small, non-square geometry so that rows and columns cannot be confused


def _samples(n: int) -> np.ndarray:
    return np.arange(n * L * F, dtype=np.float32).reshape(n, L, F)


# ------------------------------------------------------------------------------------------ .npy


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (_samples(2), _samples(2)),                      # (N, L, F)
        (_samples(1)[0], _samples(1)),                   # (L, F)
        (_samples(3).reshape(3, L * F), _samples(3)),    # (N, L*F)
        (_samples(1).reshape(L * F), _samples(1)),       # (L*F,)
        (_samples(2).astype(np.uint8), _samples(2)),     # integers are converted
    ],
)
def test_npy_shapes_are_brought_to_n_l_f(tmp_path: Path, stored: np.ndarray, expected: np.ndarray) -> None:
    np.save(tmp_path / "in.npy", stored)
    x = read_inputs(tmp_path / "in.npy", L, F)
    assert x.dtype == np.float32 and x.shape == expected.shape
    np.testing.assert_array_equal(x, expected)


def test_npy_wrong_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "input.npy", np.zeros((3, 11)))
    with pytest.raises(DataError, match=r"^input .*input\.npy: expected an array of shape \(N, 4, 3\) or \(4, 3\) "
                                        r"\(or flattened \(N, 12\) or \(12,\)\), got \(3, 11\)$"):
        read_inputs(tmp_path / "input.npy", L, F)


def test_npy_with_nan(tmp_path: Path) -> None:
    x = _samples(2)
    x[1, 3, 2] = np.nan
    np.save(tmp_path / "in.npy", x)
    with pytest.raises(DataError, match=r"^input .*in\.npy contains 1 NaN/Inf values \(first at index \(1, 3, 2\)\)$"):
        read_inputs(tmp_path / "in.npy", L, F)


def test_npy_unreadable_or_not_numeric(tmp_path: Path) -> None:
    (tmp_path / "text.npy").write_text("1,2,3")
    with pytest.raises(DataError, match=r"^input .*text\.npy: expected a NumPy \.npy file, got unreadable data"):
        read_inputs(tmp_path / "text.npy", L, F)
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"^input .*words\.npy: expected an array of real numbers \(bool, int or float\), "
                                        r"got dtype <U1$"):
        read_inputs(tmp_path / "words.npy", L, F)


def _npy_with_header(header: bytes, data: bytes = b"") -> bytes:
    """A .npy file (format 1.0) with any header text: what NumPy writes, or something it cannot parse."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


# Found by fuzzing (tests/fuzz): np.load allocated what the header declared, and its header parser
# raised TypeError, tokenize.TokenError or SyntaxError, all of which escaped as tracebacks.


def test_npy_header_declaring_terabytes_is_rejected_without_allocating(tmp_path: Path) -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    (tmp_path / "huge.npy").write_bytes(_npy_with_header(header.ljust(117) + b"\n", bytes(16)))
    with pytest.raises(DataError, match=r"^input .*huge\.npy: expected 8000000000000 data bytes for float64 of "
                                        r"shape \(1000000, 1000000\), got 16 \(truncated\)$"):
        read_inputs(tmp_path / "huge.npy", L, F)  # was MemoryError (and 1.7 GiB allocated for smaller shapes)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"{'descr': '<f8', b'x': 1}\n", r"TypeError: '<' not supported between instances of 'bytes' and 'str'\)$"),
        (b"{'descr': '''\n", r"TokenError: \('EOF in multi-line string'"),
        (b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,)*100, }\n", r"ValueError: malformed node"),
        # \x0b escaped: one line; Python 3.12's tokenizer names the character instead
        (b"{'descr': '<f8'\x0b}\n", r"(ValueError: Cannot parse header: .*\\x0b|TokenError: .*U\+000B)"),
    ],
)
def test_npy_malformed_headers_are_data_errors(tmp_path: Path, header: bytes, message: str) -> None:
    (tmp_path / "bad.npy").write_bytes(_npy_with_header(header))
    with pytest.raises(DataError, match=rf"^input .*bad\.npy: expected a NumPy \.npy file, got unreadable data \({message}") as caught:
        read_inputs(tmp_path / "bad.npy", L, F)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize(("array", "dtype"), [(np.zeros((1, 12), np.complex64), r"complex64"),
                                              (np.zeros((1, 12), "m8[s]"), r"timedelta64\[s\]")])
def test_npy_complex_and_timedelta_are_not_silently_cast(tmp_path: Path, array: np.ndarray, dtype: str) -> None:
    np.save(tmp_path / "in.npy", array)  # complex used to lose its imaginary part with a ComplexWarning
    with pytest.raises(DataError, match=rf"^input .*in\.npy: expected an array of real numbers \(bool, int or "
                                        rf"float\), got dtype {dtype}$"):
        read_inputs(tmp_path / "in.npy", L, F)


def test_npy_negative_size_in_header(tmp_path: Path) -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 12), }"
    (tmp_path / "neg.npy").write_bytes(_npy_with_header(header + b"\n"))
    with pytest.raises(DataError, match=r"^input .*neg\.npy: expected a shape of non-negative sizes, got \(-1, 12\)$"):
        read_inputs(tmp_path / "neg.npy", L, F)


def test_npy_fortran_order_and_big_endian_still_load(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.asfortranarray(_samples(2).astype(">f8")))
    np.testing.assert_array_equal(read_inputs(tmp_path / "f.npy", L, F), _samples(2))


# ------------------------------------------------------------------------------------------ CSV and stdin


def test_csv_with_header_comments_and_trailing_commas(tmp_path: Path) -> None:
    rows = _samples(2).reshape(2, L * F)
    header = ",".join(f"v{i}" for i in range(L * F))
    body = "\n".join(",".join(str(v) for v in row) + "," for row in rows)
    (tmp_path / "in.csv").write_text(f"{header}\n# a comment\n\n{body}\n")
    np.testing.assert_array_equal(read_inputs(tmp_path / "in.csv", L, F), _samples(2))


def test_whitespace_separated_txt_without_header(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text(" ".join(str(v) for v in range(L * F)) + "\n")
    np.testing.assert_array_equal(read_inputs(tmp_path / "in.txt", L, F), _samples(1))


def test_csv_row_with_wrong_count_is_named(tmp_path: Path) -> None:
    good = ",".join(["1"] * (L * F))
    (tmp_path / "in.csv").write_text(f"a,b\n{good}\n" + ",".join(["1"] * (L * F - 1)) + "\n")
    with pytest.raises(DataError, match=r"^input .*in\.csv row 3: expected 12 numbers, got 11$"):
        read_inputs(tmp_path / "in.csv", L, F)


def test_csv_non_numeric_data_row_is_named(tmp_path: Path) -> None:
    good = ",".join(["1"] * (L * F))
    (tmp_path / "in.csv").write_text(f"{good}\n1,x" + ",1" * (L * F - 2) + "\n")
    with pytest.raises(DataError, match=r"^input .*in\.csv row 2: expected 12 numbers, got non-numeric value 'x'$"):
        read_inputs(tmp_path / "in.csv", L, F)


def test_csv_without_data_rows(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a,b,c\n")
    with pytest.raises(DataError, match=r"^input .*in\.csv: expected at least one row of 12 numbers, got none$"):
        read_inputs(tmp_path / "in.csv", L, F)


def test_csv_with_nan_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(",".join(["1"] * (L * F - 1) + ["nan"]) + "\n")
    with pytest.raises(DataError, match=r"^input .*in\.csv contains 1 NaN/Inf values \(first at index \(0, 3, 2\)\)$"):
        read_inputs(tmp_path / "in.csv", L, F)


def test_csv_number_beyond_float32_is_named_not_turned_into_inf(tmp_path: Path) -> None:
    # Found by fuzzing: 3.5e38 is finite in float64 but overflowed to inf (with a RuntimeWarning) when
    # cast to float32, and was then reported as a NaN/Inf value that the file does not hold.
    (tmp_path / "big.csv").write_text(",".join(["1"] * (L * F - 1) + ["3.5e38"]) + "\n")
    with pytest.raises(DataError, match=r"^input .*big\.csv: expected numbers within float32's range \(\+-3\.4e38\), "
                                        r"got 3\.5e\+38 at index \(0, 3, 2\)$"):
        read_inputs(tmp_path / "big.csv", L, F)


def test_dash_reads_csv_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _samples(2).reshape(2, L * F)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(",".join(map(str, row)) for row in rows)))
    np.testing.assert_array_equal(read_inputs("-", L, F), _samples(2))


def test_empty_stdin_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(DataError, match=r"^input stdin: expected at least one row of 12 numbers, got none$"):
        read_inputs("-", L, F)


# ------------------------------------------------------------------------------------------ images


def _left_white_right_black(width: int, height: int) -> Image.Image:
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, : width // 2] = 255
    return Image.fromarray(pixels)


def test_image_is_resized_to_rows_by_cols_and_scaled(tmp_path: Path) -> None:
    _left_white_right_black(width=24, height=12).save(tmp_path / "in.png")
    x = read_inputs(tmp_path / "in.png", L, F * 2, image_shape=(L, F * 2), pixel_max=16)  # 4 rows, 6 cols
    assert x.shape == (1, 4, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, :3], 16.0)
    np.testing.assert_allclose(x[0, :, 3:], 0.0)


def test_invert_is_for_dark_on_light_images(tmp_path: Path) -> None:
    _left_white_right_black(width=8, height=8).save(tmp_path / "in.png")
    x = read_inputs(tmp_path / "in.png", 2, 2, image_shape=(2, 2), invert=True)  # pixel_max None: 0..255
    np.testing.assert_allclose(x[0], [[0.0, 255.0], [0.0, 255.0]])


def test_transparent_background_becomes_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black ...
    rgba[:, :2] = [0, 0, 0, 255]                # ... except an opaque black left half
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "in.png")
    x = read_inputs(tmp_path / "in.png", 2, 2, image_shape=(2, 2), pixel_max=255, invert=True)
    np.testing.assert_allclose(x[0], [[255.0, 0.0], [255.0, 0.0]])


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp", ".gif", ".pgm"])
def test_other_image_formats(tmp_path: Path, suffix: str) -> None:
    Image.fromarray(np.full((10, 10), 128, dtype=np.uint8)).convert("RGB" if suffix != ".pgm" else "L").save(
        tmp_path / f"in{suffix}"
    )
    x = read_inputs(tmp_path / f"in{suffix}", 2, 2, image_shape=(2, 2), pixel_max=255)
    np.testing.assert_allclose(x, np.full((1, 2, 2), 128.0), atol=2)


def test_sixteen_bit_pgm_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 65535], [128 * 257, 50 * 257]], dtype=">u2")
    (tmp_path / "in.pgm").write_bytes(b"P5\n2 2\n65535\n" + values.tobytes())
    x = read_inputs(tmp_path / "in.pgm", 2, 2, image_shape=(2, 2), pixel_max=255)
    np.testing.assert_allclose(x[0], [[0.0, 255.0], [128.0, 50.0]])


def test_image_needs_an_image_model(tmp_path: Path) -> None:
    _left_white_right_black(4, 4).save(tmp_path / "in.png")
    with pytest.raises(DataError, match=r"^input .*in\.png: expected a \.npy or \.csv file \(the model was not "
                                        r"trained on images\), got a \.png image$"):
        read_inputs(tmp_path / "in.png", L, F)


def test_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"^input .*broken\.png: expected a readable image, got UnidentifiedImageError"):
        read_inputs(tmp_path / "broken.png", 2, 2, image_shape=(2, 2))


@pytest.mark.parametrize(("side", "error"), [(60000, "DecompressionBombError"), (10000, "DecompressionBombWarning")])
def test_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path, side: int, error: str) -> None:
    # Found by fuzzing: DecompressionBombError escaped as a traceback, and an image just under twice
    # PIL's limit was decoded (hundreds of MB) with only a warning.
    (tmp_path / "bomb.pgm").write_bytes(f"P5\n{side} {side}\n255\n".encode() + bytes(10))
    with pytest.raises(DataError, match=rf"^input .*bomb\.pgm: expected a readable image, got {error}: Image size "):
        read_inputs(tmp_path / "bomb.pgm", L, F, image_shape=(L, F))


# ------------------------------------------------------------------------------------------ paths


def test_missing_file_folder_and_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^input .*absent\.npy: expected an existing file, got no such file$"):
        read_inputs(tmp_path / "absent.npy", L, F)
    with pytest.raises(DataError, match=r"^input .*: expected a file, got a folder$"):
        read_inputs(tmp_path, L, F)
    (tmp_path / "in.json").write_text("[]")
    with pytest.raises(DataError, match=r"^input .*in\.json: expected one of the extensions \.npy, \.csv, .*\.pgm "
                                        r"or '-' for stdin, got '\.json'$"):
        read_inputs(tmp_path / "in.json", L, F)


@pytest.mark.parametrize("first", ["1..5", "1,,5", "1e", "-.3.4"])
def test_a_typo_in_the_first_data_row_is_an_error_not_a_dropped_header(tmp_path: Path, first: str) -> None:
    """Issue 17 item 9: a mistyped first row was taken as a header: 2 rows in, 1 prediction out, exit 0."""
    rows = [[first] + ["2"] * (L * F - 1), ["3"] * (L * F)]
    (tmp_path / "in.csv").write_text("\n".join(";".join(r) for r in rows).replace(";", " ") + "\n")
    with pytest.raises(DataError, match=rf"input .*in.csv row 1: expected {L * F} numbers, got non-numeric value"):
        read_inputs(tmp_path / "in.csv", L, F)
    header = " ".join(f"v{i}" for i in range(L * F))
    (tmp_path / "in.csv").write_text(header + "\n" + (tmp_path / "in.csv").read_text())
    with pytest.raises(DataError, match=r"row 2: expected 12 numbers, got non-numeric value"):
        read_inputs(tmp_path / "in.csv", L, F)
