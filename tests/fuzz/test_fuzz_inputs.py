"""Fuzzing ``read_inputs``: CSV text (files and stdin), ``.npy`` arrays and image files."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzz_harness import MAX_ALLOCATION, check_entry_point, fuzz_settings, mutated, write
from lstmkit.data import read_inputs
from lstmkit.errors import DataError

SIZES = st.integers(1, 4)  # L and F: small, so that random inputs sometimes have the right count


def valid_samples(length: int, features: int, pixel_max: float | None = None):
    """A checker for a successful read: float32 (N, L, F), N >= 1, finite, within 0..pixel_max for images."""

    def check(x: np.ndarray) -> None:
        assert isinstance(x, np.ndarray) and x.dtype == np.float32
        assert x.ndim == 3 and x.shape[0] >= 1 and x.shape[1:] == (length, features)
        assert np.isfinite(x).all()
        if pixel_max is not None:
            assert x.min() >= 0 and x.max() <= pixel_max + 1e-4

    return check


# ------------------------------------------------------------------------------------------------- CSV

CELLS = st.one_of(
    st.floats().map(repr), st.integers().map(str), st.floats(-1e3, 1e3).map("{:.3g}".format),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "", " ", "x", '"1"', "'2'", "1_0", "0x10", "--1", "1,5"]),
    st.text(max_size=4),
)


@st.composite
def csv_texts(draw: st.DrawFn, count: int) -> str:
    """Rows of about ``count`` cells (ragged sometimes), with headers, comments and blank lines."""
    sep = draw(st.sampled_from([",", ", ", " ", "\t", ";"]))
    lines = []
    if draw(st.booleans()):
        lines.append(sep.join(f"v{i}" for i in range(count)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["row", "row", "row", "comment", "blank"]))
        if kind == "row":
            n = draw(st.sampled_from([count, count, count - 1, count + 1]) | st.integers(0, 3 * count))
            cells = draw(st.lists(st.floats(-1e3, 1e3).map(repr), min_size=n, max_size=n)) \
                if draw(st.booleans()) else draw(st.lists(CELLS, min_size=n, max_size=n))
            lines.append(sep.join(cells) + draw(st.sampled_from(["", ",", " "])))
        else:
            lines.append("# note" if kind == "comment" else "")
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


@fuzz_settings()
@given(length=SIZES, features=SIZES, data=st.data(), source=st.sampled_from([".csv", ".txt", "-"]))
def test_csv_reader(workdir: Path, length: int, features: int, data: st.DataObject, source: str) -> None:
    content = data.draw(st.one_of(
        csv_texts(length * features).map(str.encode),
        mutated(csv_texts(length * features).map(str.encode)),
        st.binary(max_size=100),
        st.text(max_size=100).map(str.encode),
    ))
    if source == "-":
        stdin = sys.stdin
        sys.stdin = io.StringIO(content.decode("utf-8", "replace"))
        try:
            check_entry_point("csv", lambda: read_inputs("-", length, features), error=DataError,
                              mentions=["input stdin"], validate=valid_samples(length, features))
        finally:
            sys.stdin = stdin
        return
    path = write(workdir / f"in{source}", content)
    check_entry_point("csv", lambda: read_inputs(path, length, features), error=DataError,
                      mentions=[f"input {path}"], validate=valid_samples(length, features))


# ------------------------------------------------------------------------------------------------ .npy

DTYPES = st.one_of(
    hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(), hnp.datetime64_dtypes(max_period="s"), hnp.timedelta64_dtypes(max_period="s"),
    hnp.unicode_string_dtypes(max_len=3), hnp.byte_string_dtypes(max_len=3),
    st.just(np.dtype([("a", "<f4"), ("b", "<i2")])),
)


@st.composite
def npy_files(draw: st.DrawFn, length: int, features: int) -> bytes:
    """A saved array of a near-right or random shape and any dtype, values including NaN and Inf."""
    n = draw(st.integers(0, 3))
    shape = draw(st.sampled_from([(n, length, features), (length, features), (n, length * features),
                                  (length * features,), (length, features, n), ()])
                 | hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    array = draw(hnp.arrays(DTYPES, shape))  # floats include NaN and Inf
    if draw(st.booleans()):
        array = np.asfortranarray(array)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str, fortran: bool = False) -> bytes:
    """A version 1.0 .npy header, as NumPy writes it, for any declared shape and dtype."""
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")


HUGE = st.integers(0, 5) | st.integers(2**20, 2**40) | st.sampled_from([2**31, 2**32, 2**62, 2**63 - 1])
DECLARED = st.tuples(st.lists(HUGE, max_size=4).map(tuple), st.sampled_from(["<f8", "|u1", "<f4", ">i4", "|b1"]),
                     st.booleans(), st.binary(max_size=64)).map(lambda t: npy_header(*t[:3]) + t[3])


@fuzz_settings()
@given(length=SIZES, features=SIZES, data=st.data())
def test_npy_reader(workdir: Path, length: int, features: int, data: st.DataObject) -> None:
    content = data.draw(st.one_of(
        npy_files(length, features),
        mutated(npy_files(length, features)),
        DECLARED,
        st.binary(max_size=200),
        st.binary(max_size=100).map(lambda b: b"\x93NUMPY" + b),
    ))
    path = write(workdir / "in.npy", content)
    check_entry_point("npy", lambda: read_inputs(path, length, features), error=DataError,
                      mentions=[f"input {path}"], validate=valid_samples(length, features),
                      max_allocation=MAX_ALLOCATION)


# ---------------------------------------------------------------------------------------------- images

IMAGE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".gif": "GIF", ".pgm": "PPM", ".jpg": "JPEG", ".jpeg": "JPEG"}
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK"]


@st.composite
def image_files(draw: st.DrawFn, suffix: str) -> bytes:
    """A small image of any mode and size, saved in the format of ``suffix`` (or as PNG when it cannot be)."""
    from PIL import Image

    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    image = Image.new(mode, (width, height))
    raw_size = len(image.tobytes())
    image.frombytes(draw(st.binary(min_size=raw_size, max_size=raw_size)))
    if mode == "P" and draw(st.booleans()):
        image.info["transparency"] = draw(st.integers(0, 255))
    buffer = io.BytesIO()
    try:
        image.save(buffer, IMAGE_FORMATS[suffix])
    except (OSError, KeyError, ValueError):  # a mode the format cannot store
        buffer = io.BytesIO()
        image.convert("L").save(buffer, IMAGE_FORMATS[suffix])
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


SIDES = st.integers(0, 16) | st.integers(2**14, 2**31 - 1)
HUGE_IMAGES = st.one_of(  # headers that declare up to billions of pixels, with little or no data
    st.tuples(SIDES, SIDES, st.sampled_from([1, 255, 65535, 0, 70000]), st.binary(max_size=32)).map(
        lambda t: f"P5\n{t[0]} {t[1]}\n{t[2]}\n".encode() + t[3]),
    st.tuples(SIDES, SIDES, st.sampled_from([0, 2, 4, 6]), st.binary(max_size=32)).map(
        lambda t: b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", t[0], t[1], 8, t[2], 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(t[3])) + png_chunk(b"IEND", b"")),
    st.tuples(SIDES, SIDES, st.binary(max_size=32)).map(
        lambda t: b"BM" + struct.pack("<IHHI", 54 + len(t[2]), 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, t[0], t[1], 1, 8, 0, 0, 0, 0, 0, 0) + t[2]),
    st.tuples(SIDES.map(lambda s: min(s, 65535)), SIDES.map(lambda s: min(s, 65535)), st.binary(max_size=32)).map(
        lambda t: b"GIF89a" + struct.pack("<HHBBB", t[0], t[1], 0, 0, 0) + b",\0\0\0\0"
        + struct.pack("<HH", t[0], t[1]) + b"\0\x08" + t[2] + b";"),
)


@fuzz_settings()
@given(length=SIZES, features=SIZES, suffix=st.sampled_from(sorted(IMAGE_FORMATS)), data=st.data(),
       pixel_max=st.sampled_from([None, 16.0, 255.0]), invert=st.booleans())
def test_image_reader(workdir: Path, length: int, features: int, suffix: str, data: st.DataObject,
                      pixel_max: float | None, invert: bool) -> None:
    content = data.draw(st.one_of(
        image_files(suffix),
        mutated(image_files(suffix)),
        HUGE_IMAGES,
        st.binary(max_size=200),
    ))
    path = write(workdir / f"in{suffix}", content)
    check_entry_point("image", lambda: read_inputs(path, length, features, image_shape=(length, features),
                                                   pixel_max=pixel_max, invert=invert),
                      error=DataError, mentions=[f"input {path}"],
                      validate=valid_samples(length, features, 255.0 if pixel_max is None else pixel_max))
