"""Request bodies in, checked arrays out; every problem is an ``ApiError`` with a status and a message.

========  ===============================================================================================
status    when
========  ===============================================================================================
400       the body is not JSON, not an object, lacks ``inputs`` (``texts`` for a text model) or has unknown keys
401       ``--api-key`` is set and the request lacks ``Authorization: Bearer KEY`` (``lstmkit.serve.guard``)
404       an unknown or expired session, an unknown path
409       a session asked of a model that cannot stream (bidirectional, conv front end, readout not "last")
413       the body is larger than ``--max-payload-bytes`` (``lstmkit.serve.guard``, before it is parsed)
422       the values: a wrong number of features, a non-number, NaN/Inf, a value beyond float32 (before or
          after standardising with the training statistics), a model output that is not finite, an empty or too long sequence,
          more sequences than ``--max-batch``; for a text model, a text that is not a string, has no tokens
          or has more than ``--max-sequence-length`` of them
429       ``--max-sessions`` sessions are open, or the client is over ``--rate-limit`` (``lstmkit.serve.guard``)
503       the queue of work for the model is full (``--max-queue``), ``--max-concurrency`` requests are in
          progress (``lstmkit.serve.guard``), or the server is shutting down
504       the request took longer than ``--request-timeout`` (``lstmkit.serve.guard``)
========  ===============================================================================================
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from lstmkit.serve.backends import ModelInfo
from lstmkit.serve.json_codec import loads
from lstmkit.serve.options import ServeOptions

__all__ = ["ApiError", "parse_json", "read_json", "parse_predict", "parse_steps", "parse_texts"]

_NUMBER_TYPES = (int, float)
_FLOAT_TYPE = frozenset({float})
_NUMBER_SET = frozenset(_NUMBER_TYPES)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_json(request: Any) -> Any:
    """The request body parsed as JSON (``GuardMiddleware`` has refused oversized bodies before this: 413)."""
    return parse_json(await request.body())


def parse_json(body: bytes) -> Any:
    """A request body parsed as JSON (orjson, see ``lstmkit.serve.json_codec``); None when it is empty."""
    if not body.strip():
        return None
    try:
        return loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"request body: expected JSON, got invalid JSON ({exc})") from None


def _inputs(body: Any, shape: str, key: str = "inputs") -> Any:
    if not isinstance(body, dict):
        got = "an empty body" if body is None else f"a JSON {type(body).__name__}"
        raise ApiError(400, f'request body: expected a JSON object {{"{key}": {shape}}}, got {got}')
    unknown = sorted(set(body) - {key})
    if unknown:
        model = "a text model" if key == "texts" else "a model of numeric inputs"
        raise ApiError(400, f"request body: unknown key {unknown[0]!r}; expected only '{key}' ({model})")
    if key not in body:
        raise ApiError(400, f'request body: expected the key "{key}" holding {shape}')
    return body[key]


def request_batch(body: Any, key: str, allowed: tuple[str, ...], holding: str, noun: str,
                  options: ServeOptions) -> tuple[dict[str, Any], list[Any]]:
    """``(body, body[key])`` of a request whose object may hold the keys ``allowed`` and must hold ``key``, a list
    of 1 to ``--max-batch`` ``noun`` (``holding`` says what, for the message); else an ``ApiError`` naming it."""
    if not isinstance(body, dict):
        got = "an empty body" if body is None else f"a JSON {type(body).__name__}"
        raise ApiError(400, f'request body: expected a JSON object {{"{key}": [...]}}, got {got}')
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        expected = f"only {allowed[0]!r}" if len(allowed) == 1 else ", ".join(repr(k) for k in allowed)
        raise ApiError(400, f"request body: unknown key {unknown[0]!r}; expected {expected}")
    if key not in body:
        raise ApiError(400, f'request body: expected the key "{key}" holding {holding}')
    items = body[key]
    if not isinstance(items, list) or not 1 <= len(items) <= options.max_batch:
        got = f"{len(items)} {noun}" if isinstance(items, list) else f"a JSON {type(items).__name__}"
        raise ApiError(422, f"{key}: expected a list of 1 to {options.max_batch} {noun} (--max-batch), got {got}")
    return body, items


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _sequence(steps: Any, where: str, info: ModelInfo, max_steps: int, min_steps: int, what: str) -> np.ndarray:
    """One sequence of steps, each a list of ``features`` finite numbers, as float32 (L, F).

    Each value must be a float32 and stay one once standardised with the training statistics (else 422).
    """
    features = info.input_size
    if not isinstance(steps, list):
        raise ApiError(422, f"{where}: expected a list of steps, each a list of {features} numbers, "
                            f"got {_describe(steps)}")
    if len(steps) < min_steps:
        need = "at least one step" if min_steps == 1 else f"at least {min_steps} steps ({what})"
        raise ApiError(422, f"{where}: expected {need}, got {len(steps)}")
    if len(steps) > max_steps:
        raise ApiError(422, f"{where}: expected at most {max_steps} steps (--max-sequence-length), got {len(steps)}")
    for t, step in enumerate(steps):
        if not isinstance(step, list) or len(step) != features:
            got = f"{len(step)} numbers" if isinstance(step, list) else _describe(step)
            raise ApiError(422, f"{where}[{t}]: expected {features} numbers (one per feature), got {got}")
        kinds = set(map(type, step))  # the usual step, numbers in range: checked without a Python loop
        if kinds <= _FLOAT_TYPE or (kinds <= _NUMBER_SET and -_FLOAT32_MAX <= min(step) and max(step) <= _FLOAT32_MAX):
            continue
        for f, value in enumerate(step):
            if type(value) not in _NUMBER_TYPES:  # bool is a subclass of int: refused as well
                raise ApiError(422, f"{where}[{t}][{f}]: expected a number, got {_describe(value)}")
            if type(value) is int and not -_FLOAT32_MAX <= value <= _FLOAT32_MAX:  # would overflow float64 too
                digits = len(str(abs(value)))
                raise ApiError(422, f"{where}[{t}][{f}]: expected a finite number, got an integer of {digits} "
                                    "digits, beyond float32")
    array = np.array(steps, dtype=np.float64)  # (L, F)
    finite = np.isfinite(array) & (np.abs(array) <= np.finfo(np.float32).max)
    if not finite.all():
        t, f = (int(i) for i in np.argwhere(~finite)[0])
        value = array[t, f]
        shown = "NaN" if math.isnan(value) else ("Infinity" if math.isinf(value) else f"{value:g}, beyond float32")
        raise ApiError(422, f"{where}[{t}][{f}]: expected a finite number, got {shown}")
    array = array.astype(np.float32)
    standardized = info.standardize(array)
    bad = ~np.isfinite(standardized)
    if bad.any():
        t, f = (int(i) for i in np.argwhere(bad)[0])
        mean, std = (float(v[f]) for v in info.standardizer)  # type: ignore[union-attr]
        raise ApiError(422, f"{where}[{t}][{f}]: expected a value that stays within float32 once standardised "
                            f"with the training statistics (mean {mean:g}, std {std:g}), got {array[t, f]:g}")
    return array


def parse_predict(body: Any, info: ModelInfo, options: ServeOptions) -> list[np.ndarray]:
    """``{"inputs": [sequence, ...]}`` -> one float32 (L_i, F) array per sequence."""
    features = info.input_size
    sequences = _inputs(body, f"[[[{features} numbers], ...steps], ...sequences]")
    if not isinstance(sequences, list) or not sequences:
        raise ApiError(422, f"inputs: expected a non-empty list of sequences, got {_describe(sequences)}")
    if len(sequences) > options.max_batch:
        raise ApiError(422, f"inputs: expected at most {options.max_batch} sequences per request (--max-batch), "
                            f"got {len(sequences)}")
    why = "the conv front end pools steps away"
    return [_sequence(s, f"inputs[{i}]", info, options.max_sequence_length, info.min_length, why)
            for i, s in enumerate(sequences)]


def parse_texts(body: Any, options: ServeOptions) -> list[str]:
    """``{"texts": ["...", ...]}`` -> the texts (a text model's ``/v1/predict``)."""
    texts = _inputs(body, '["text", ...]', key="texts")
    if not isinstance(texts, list) or not texts:
        raise ApiError(422, f"texts: expected a non-empty list of strings, got {_describe(texts)}")
    if len(texts) > options.max_batch:
        raise ApiError(422, f"texts: expected at most {options.max_batch} texts per request (--max-batch), "
                            f"got {len(texts)}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(422, f"texts[{i}]: expected a string, got {_describe(text)}")
    return texts


def check_token_counts(sequences: list[np.ndarray], options: ServeOptions) -> None:
    """Refuse an encoded text longer than ``--max-sequence-length`` tokens."""
    for i, ids in enumerate(sequences):
        if len(ids) > options.max_sequence_length:
            raise ApiError(422, f"texts[{i}]: expected at most {options.max_sequence_length} tokens "
                                f"(--max-sequence-length), got {len(ids)}")


def parse_steps(body: Any, info: ModelInfo, options: ServeOptions) -> np.ndarray:
    """``{"inputs": [step, ...]}`` (one or more steps of one stream) -> float32 (K, F)."""
    steps = _inputs(body, f"[[{info.input_size} numbers], ...steps]")
    return _sequence(steps, "inputs", info, options.max_sequence_length, 1, "")
