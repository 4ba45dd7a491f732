"""A pickle-free file format for training checkpoints: safetensors for the arrays, a JSON skeleton for the rest.

A checkpoint payload (``Trainer.state_dict()``: weights, optimiser state, schedule, positions, RNG states of
torch, NumPy and Python) is a nested structure of dicts, lists, tuples, tensors, NumPy arrays and scalars.
``encode`` flattens it into

- a dict of tensors, written as a safetensors file (every NumPy array travels as its raw bytes in a ``uint8``
  tensor, so any numeric dtype comes back bit-identical), and
- a JSON skeleton, stored in the safetensors header's ``__metadata__``, that says where each tensor goes and
  what type each plain value had: a tuple stays a tuple, ``1`` stays an int and ``1.0`` a float (floats travel
  as ``float.hex``, so NaN, infinities and every bit of a finite value survive), dict keys keep their type.

``decode`` rebuilds exactly that structure, and never unpickles: an old ``torch.save`` (pickle) checkpoint is
refused with ``CheckpointError`` before a byte of it is interpreted, because unpickling a file that someone
shared can run any code.

Example::

    data = dumps({"model": module.state_dict(), "python_rng": random.getstate()})
    state = loads(data)     # the same structure, tensors on the CPU
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lstmkit.errors import LstmkitError
from lstmkit.artifacts.safe_files import json_depth_exceeds

__all__ = ["CheckpointError", "dumps", "loads", "FORMAT"]

FORMAT = "lstmkit-checkpoint-1"
_META_KEY = "lstmkit_checkpoint"
MAX_DEPTH = 64
"""The deepest nesting a checkpoint's skeleton may have (a trainer's state is about 6 deep)."""
MAX_HEADER_BYTES = 100 * 2**20
"""safetensors' own limit on its JSON header."""


class CheckpointError(LstmkitError):
    """A checkpoint file that cannot be read: not ours, pickle-based, truncated or inconsistent."""


def dumps(payload: Any) -> bytes:
    """The bytes of a checkpoint file holding ``payload`` (see the module docstring for what it may hold)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(payload, tensors, "payload", 0)
    meta = json.dumps({"format": FORMAT, "payload": skeleton}, allow_nan=False, separators=(",", ":"))
    return save_safetensors(tensors, metadata={_META_KEY: meta})


def loads(data: bytes, name: str = "checkpoint", device: torch.device | str = "cpu") -> Any:
    """Rebuild the payload that ``dumps`` wrote; ``name`` (the file's path) goes into error messages.

    Raises:
        CheckpointError: a pickle (``torch.save``) checkpoint, or a file that is not a valid checkpoint.
    """
    # A safetensors file starts with its header's 8-byte length, then the JSON header: a length whose low byte
    # is 0x80 (one header size in 256) must not read as pickle's opcode \x80.
    safetensors_like = data[8:9] == b"{"
    if data[:2] == b"PK" or (data[:1] == b"\x80" and not safetensors_like):
        raise CheckpointError(
            f"checkpoint {name}: expected an lstmkit checkpoint (safetensors + JSON), got a pickle (torch.save) "
            "file; it is refused because unpickling can run any code: train again, or convert it yourself only if "
            "you trust whoever wrote it")
    meta = _header_metadata(data, name)
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {name}: expected a safetensors file, got one that fails to load "
                              f"({exc})") from None
    if meta.get("format") != FORMAT or "payload" not in meta:
        raise CheckpointError(f"checkpoint {name}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    try:
        payload = _decode(meta["payload"], tensors, torch.device(device), 0)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint {name}: its structure is not valid ({type(exc).__name__}: {exc})") from None
    return payload


def _header_metadata(data: bytes, name: str) -> dict[str, Any]:
    """The checkpoint's skeleton from the safetensors header, parsed with bounds on size and depth."""
    if len(data) < 8:
        raise CheckpointError(f"checkpoint {name}: expected a safetensors file, got {len(data)} bytes")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise CheckpointError(f"checkpoint {name}: expected a safetensors header of at most "
                              f"{min(MAX_HEADER_BYTES, len(data) - 8)} bytes, got a claimed {size}")
    try:
        header = _json_loads(data[8:8 + size].decode("utf-8"), MAX_DEPTH)
        meta = _json_loads(header["__metadata__"][_META_KEY], MAX_DEPTH)
        if not isinstance(meta, dict):
            raise ValueError("expected a JSON object")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {name}: expected an lstmkit checkpoint header, got one that is not "
                              f"valid ({type(exc).__name__}: {exc})") from None
    return meta


def _json_loads(text: str, limit: int) -> Any:
    if json_depth_exceeds(text, limit):
        raise ValueError(f"expected JSON nested at most {limit} deep, got deeper")
    return json.loads(text)


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CheckpointError(f"checkpoint payload {where}: expected nesting at most {MAX_DEPTH} deep, got deeper")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.fields is not None:
            raise CheckpointError(f"checkpoint payload {where}: expected a numeric NumPy array, got dtype {array.dtype}")
        key = str(len(tensors))
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1) if array.size else np.zeros(0, np.uint8)
        tensors[key] = torch.from_numpy(raw.copy())
        return {"ndarray": key, "dtype": array.dtype.str, "shape": list(array.shape),
                "scalar": isinstance(value, np.generic)}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_quantized:
            raise CheckpointError(f"checkpoint payload {where}: expected a dense tensor, got layout {value.layout}")
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"tensor": key}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, tensors, f"{where} key", depth + 1),
                          _encode(v, tensors, f"{where}[{k!r}]", depth + 1)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, tensors, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
    raise CheckpointError(f"checkpoint payload {where}: expected tensors, arrays, numbers, strings, None, dicts, "
                          f"lists or tuples, got {type(value).__name__}")


def _decode(node: Any, tensors: dict[str, torch.Tensor], device: torch.device, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH}")
    if node is None or isinstance(node, (bool, str)):
        return node
    if not isinstance(node, dict) or len(node) < 1:
        raise TypeError(f"unexpected node {str(node)[:40]!r}")
    if "int" in node:
        return int(node["int"])
    if "float" in node:
        return float.fromhex(node["float"])
    if "tensor" in node:
        return tensors[node["tensor"]].to(device)
    if "ndarray" in node:
        dtype = np.dtype(node["dtype"])
        if dtype.hasobject or dtype.fields is not None:
            raise ValueError(f"dtype {dtype} is not numeric")
        shape = tuple(int(n) for n in node["shape"])
        array = tensors[node["ndarray"]].numpy().view(dtype).reshape(shape).copy()
        return array[()] if node.get("scalar") else array
    if "dict" in node:
        return {_decode(k, tensors, device, depth + 1): _decode(v, tensors, device, depth + 1)
                for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, tensors, device, depth + 1) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, tensors, device, depth + 1) for v in node["tuple"])
    raise TypeError(f"unexpected node with keys {sorted(node)[:4]}")
