"""Fuzzing the IDX reader (MNIST's file format), gzipped and plain."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzz_harness import MAX_ALLOCATION, check_entry_point, fuzz_settings, mutated, write
from lstmkit.data import read_idx
from lstmkit.errors import DataError

CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]
ITEMSIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}
DIMS = st.integers(0, 6) | st.integers(0, 2**32 - 1) | st.sampled_from([1, 2**16, 2**21, 2**31, 2**32 - 1])


@st.composite
def idx_files(draw: st.DrawFn) -> bytes:
    """A header with any (mostly valid) type code and dimensions, then about as many data bytes as it declares."""
    zeros = draw(st.sampled_from([b"\x00\x00"] * 7 + [b"\x00\x01", b"\x1f\x8b"]))
    code = draw(st.sampled_from(CODES) if draw(st.integers(0, 3)) else st.integers(0, 255))
    ndim = draw(st.integers(0, 4) | st.integers(0, 255))
    if draw(st.booleans()):  # one size repeated: many dimensions, or products past 2**64
        dims = [draw(DIMS)] * ndim
    else:
        dims = draw(st.lists(DIMS, min_size=min(ndim, 8), max_size=min(ndim, 8)))
    header = zeros + bytes([code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    declared = int(np.prod(dims, dtype=object)) * ITEMSIZE.get(code, 1) if dims else 0
    size = draw(st.sampled_from([declared, declared, declared - 1, declared + 1]).filter(lambda n: 0 <= n <= 4096)
                if declared <= 4096 and draw(st.integers(0, 3)) else st.integers(0, 64))
    return header + draw(st.binary(min_size=size, max_size=size))


@st.composite
def written_files(draw: st.DrawFn) -> bytes:
    """A valid file: the header and big-endian data that ``write_idx`` writes, built in memory."""
    dtype = draw(st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    array = np.frombuffer(draw(st.binary(min_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                                         max_size=int(np.prod(shape)) * np.dtype(dtype).itemsize)),
                          dtype=dtype).reshape(shape)
    header = bytes([0, 0, {np.uint8: 8, np.int8: 9, np.int16: 11, np.int32: 12, np.float32: 13,
                           np.float64: 14}[dtype], len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def maybe_gzipped(content: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return content | content.map(lambda b: gzip.compress(b, mtime=0)) \
        | mutated(content.map(lambda b: gzip.compress(b, mtime=0)))


IDX_CONTENT = st.one_of(
    idx_files(),
    idx_files(),
    maybe_gzipped(idx_files()),
    maybe_gzipped(mutated(written_files())),
    written_files(),
    st.binary(max_size=64),
)


def valid_idx(array: np.ndarray) -> None:
    assert isinstance(array, np.ndarray) and array.dtype.isnative and array.flags.writeable
    assert array.dtype in {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64)}


@fuzz_settings()
@given(content=IDX_CONTENT,
       expected_magic=st.one_of(st.none(), st.none(), st.none(), st.sampled_from([0x801, 0x803]), st.integers(0, 2**32 - 1)))
def test_idx_reader(workdir: Path, content: bytes, expected_magic: int | None) -> None:
    path = write(workdir / "data-idx3-ubyte", content)
    check_entry_point("idx", lambda: read_idx(path, expected_magic=expected_magic), error=DataError,
                      mentions=[f"IDX file {path}"], validate=valid_idx, max_allocation=MAX_ALLOCATION)
