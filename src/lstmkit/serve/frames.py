"""The binary frames of ``/v1/stream``: many sessions' steps in one WebSocket message, as raw float32.

Every number is little-endian. A binary message is a 12-byte header and ``count`` records::

    header   magic  b"LK"     2 bytes
             version          u8   (1)
             op               u8   (0x02 STEP: client -> server; 0x82 OUTPUT: server -> client)
             count            u32  records that follow
             width            u32  numbers per step: F (the model's input size) in STEP, C (classes) in OUTPUT

    STEP record (24 bytes + K*F*4)          OUTPUT record (36 bytes + K*C*4)
             session id   16 bytes (raw)         session id   16 bytes (raw)
             ref          u32 (the client's)     ref          u32 (the STEP record's)
             steps K      u32                    first step   u64 (the session's index of the first of the K)
             K*F float32  the raw inputs         steps K      u32
                                                 K*C float32  the probabilities after each step

A session id is the 32 hex digits that opening a session returns, sent as its 16 bytes. A STEP message
carries any mix of sessions and step counts; each record is answered by one OUTPUT record with its ``ref``
or, for a record that fails (an unknown session, a NaN), by a JSON error message with its ``ref``. The
answers to one STEP message come as one OUTPUT message (the records that succeeded) and the errors.

``encode_steps`` / ``decode_steps`` and ``encode_outputs`` / ``decode_outputs`` are the two directions; a
malformed message raises ``FrameError``. When every record of a message has the same step count (the usual
case: one step per session), a message is read and written as one numpy structured array, with no Python
loop over the records.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "HEADER",
    "MAGIC",
    "OP_OUTPUT",
    "OP_STEP",
    "VERSION",
    "FrameError",
    "OutputRecord",
    "StepRecords",
    "decode_outputs",
    "decode_steps",
    "encode_outputs",
    "encode_steps",
    "read_header",
]

MAGIC = b"LK"
VERSION = 1
OP_STEP = 0x02
OP_OUTPUT = 0x82
HEADER = struct.Struct("<2sBBII")  # magic, version, op, count, width
STEP_RECORD = struct.Struct("<16sII")  # session id, ref, steps
OUTPUT_RECORD = struct.Struct("<16sIQI")  # session id, ref, first step, steps
ID_BYTES = 16


class FrameError(ValueError):
    """A binary message that does not follow the format (the message says what is wrong)."""


class StepRecords(NamedTuple):
    """The records of a STEP message: session ids (hex), refs, and each record's inputs (K_i, F) float32."""

    ids: list[str]
    refs: list[int]
    inputs: list[np.ndarray]
    block: np.ndarray | None = None
    """All inputs as one (N, K, F) array, when every record has the same K (``inputs`` are its rows)."""


class OutputRecord(NamedTuple):
    id: str
    ref: int
    first: int
    probabilities: np.ndarray  # (K, C) float32


def _step_dtype(steps: int, width: int) -> np.dtype:
    return np.dtype([("id", "V16"), ("ref", "<u4"), ("steps", "<u4"), ("x", "<f4", (steps, width))])


def _output_dtype(steps: int, width: int) -> np.dtype:
    return np.dtype([("id", "V16"), ("ref", "<u4"), ("first", "<u8"), ("steps", "<u4"),
                     ("p", "<f4", (steps, width))])


def read_header(data: bytes, op: int) -> tuple[int, int]:
    """``(count, width)`` of a binary message with operation ``op``, or FrameError."""
    if len(data) < HEADER.size:
        raise FrameError(f"binary message: expected a {HEADER.size}-byte header (b'LK', version, op, count, width), "
                         f"got {len(data)} bytes")
    magic, version, got_op, count, width = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError(f"binary message: expected the magic bytes b'LK', got {magic!r}")
    if version != VERSION:
        raise FrameError(f"binary message: expected version {VERSION}, got {version}")
    if got_op != op:
        raise FrameError(f"binary message: expected op 0x{op:02x}, got 0x{got_op:02x}")
    return count, width


def _raw_id(session_id: str) -> bytes:
    try:
        raw = bytes.fromhex(session_id)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != ID_BYTES:
        raise FrameError(f"session id: expected {2 * ID_BYTES} hex digits, got {session_id!r}")
    return raw


def encode_steps(records: Sequence[tuple[str, int, np.ndarray]], width: int) -> bytes:
    """A STEP message of ``(session id, ref, inputs (K, width))`` records."""
    parts = [HEADER.pack(MAGIC, VERSION, OP_STEP, len(records), width)]
    for session_id, ref, x in records:
        x = np.ascontiguousarray(x, dtype="<f4")
        if x.ndim != 2 or x.shape[1] != width:
            raise FrameError(f"session {session_id}: expected inputs of shape (K, {width}), got {x.shape}")
        parts.append(STEP_RECORD.pack(_raw_id(session_id), ref, x.shape[0]))
        parts.append(x.tobytes())
    return b"".join(parts)


def decode_steps(data: bytes, width: int, max_records: int, max_steps: int) -> StepRecords:
    """The records of a STEP message for a model of ``width`` inputs; FrameError names what is malformed
    (the header, a count over ``max_records``, a record over ``max_steps`` steps or with none, the length)."""
    count, got_width = read_header(data, OP_STEP)
    if got_width != width:
        raise FrameError(f"binary message: expected width {width} (the model's inputs per step), got {got_width}")
    if count == 0:
        raise FrameError("binary message: expected at least one record, got 0")
    if count > max_records:
        raise FrameError(f"binary message: expected at most {max_records} records (--max-batch), got {count}")
    if len(data) >= HEADER.size + STEP_RECORD.size:
        steps = STEP_RECORD.unpack_from(data, HEADER.size)[2]
        dtype = _step_dtype(steps, width)
        if 1 <= steps <= max_steps and len(data) == HEADER.size + count * dtype.itemsize:
            table = np.frombuffer(data, dtype, count, HEADER.size)
            if (table["steps"] == steps).all():  # every record has the same K: no loop over records
                block = table["x"]
                return StepRecords(_hex_ids(table["id"]), table["ref"].tolist(), list(block), block)
    ids, refs, inputs = [], [], []
    offset = HEADER.size
    for index in range(count):
        if len(data) < offset + STEP_RECORD.size:
            raise FrameError(f"binary message: record {index} is cut short (expected a {STEP_RECORD.size}-byte "
                             f"record header at byte {offset}, the message has {len(data)})")
        raw, ref, steps = STEP_RECORD.unpack_from(data, offset)
        offset += STEP_RECORD.size
        if not 1 <= steps <= max_steps:
            raise FrameError(f"binary message: record {index}: expected 1 to {max_steps} steps "
                             f"(--max-sequence-length), got {steps}")
        size = steps * width * 4
        if len(data) < offset + size:
            raise FrameError(f"binary message: record {index} is cut short (expected {size} bytes of float32 "
                             f"inputs, {len(data) - offset} remain)")
        ids.append(raw.hex())
        refs.append(ref)
        inputs.append(np.frombuffer(data, "<f4", steps * width, offset).reshape(steps, width))
        offset += size
    if offset != len(data):
        raise FrameError(f"binary message: expected {offset} bytes for its {count} records, got {len(data)}")
    return StepRecords(ids, refs, inputs)


def _hex_ids(raw: np.ndarray) -> list[str]:
    """The 16-byte ids of a structured array's ``id`` column as hex strings."""
    flat = raw.tobytes()
    return [flat[i:i + ID_BYTES].hex() for i in range(0, len(flat), ID_BYTES)]


def encode_outputs(records: Sequence[tuple[str, int, int, np.ndarray]], width: int) -> bytes:
    """An OUTPUT message of ``(session id, ref, first step, probabilities (K, width))`` records."""
    header = HEADER.pack(MAGIC, VERSION, OP_OUTPUT, len(records), width)
    if not records:
        return header
    steps = len(records[0][3])
    if all(len(record[3]) == steps for record in records):  # one structured array, no per-record packing
        table = np.empty(len(records), _output_dtype(steps, width))
        table["id"] = np.frombuffer(b"".join(_raw_id(r[0]) for r in records), "V16")
        table["ref"] = [r[1] for r in records]
        table["first"] = [r[2] for r in records]
        table["steps"] = steps
        table["p"] = np.stack([r[3] for r in records])
        return header + table.tobytes()
    parts = [header]
    for session_id, ref, first, probabilities in records:
        parts.append(OUTPUT_RECORD.pack(_raw_id(session_id), ref, first, len(probabilities)))
        parts.append(np.ascontiguousarray(probabilities, dtype="<f4").tobytes())
    return b"".join(parts)


def decode_outputs(data: bytes) -> list[OutputRecord]:
    """The records of an OUTPUT message."""
    count, width = read_header(data, OP_OUTPUT)
    records, offset = [], HEADER.size
    if count and len(data) >= HEADER.size + OUTPUT_RECORD.size:
        steps = OUTPUT_RECORD.unpack_from(data, HEADER.size)[3]
        dtype = _output_dtype(steps, width)
        if len(data) == HEADER.size + count * dtype.itemsize:
            table = np.frombuffer(data, dtype, count, HEADER.size)
            if (table["steps"] == steps).all():
                return [OutputRecord(i, r, f, p) for i, r, f, p in
                        zip(_hex_ids(table["id"]), table["ref"].tolist(), table["first"].tolist(), table["p"])]
    for index in range(count):
        if len(data) < offset + OUTPUT_RECORD.size:
            raise FrameError(f"output message: record {index} is cut short")
        raw, ref, first, steps = OUTPUT_RECORD.unpack_from(data, offset)
        offset += OUTPUT_RECORD.size
        size = steps * width * 4
        if len(data) < offset + size:
            raise FrameError(f"output message: record {index} is cut short")
        records.append(OutputRecord(raw.hex(), ref, first,
                                    np.frombuffer(data, "<f4", steps * width, offset).reshape(steps, width)))
        offset += size
    return records
