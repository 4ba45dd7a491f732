"""``POST /v1/frames``: frames in, frames out (a frames model forecasts the next frames of each sequence).

Request ``{"frames": [sequence, ...]}``: 1 to ``--max-batch`` sequences, each a list of 1 to
``--max-sequence-length`` frames of shape (C, H, W) (nested lists of numbers in 0..1; C, H and W as the
model was trained, see ``/healthz``); sequences may differ in length. Answer ``{"frames": [forecast, ...]}``,
one forecast of shape (K, C, H, W) per sequence, K = the recipe's ``output_frames``, as
``lstmkit.load(folder).predict(sequence[None])[0]``. Bad input: 400 (not a JSON object, unknown key, no
``frames``) or 422 (a shape or a value), naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError, read_json, request_batch

__all__ = ["FramesRequest", "FramesResponse", "add_frames_routes", "parse_frames"]


class FramesRequest(BaseModel):
    frames: list[list[list[list[list[float]]]]] = Field(
        description="Sequences, each a list of frames (C, H, W) with values in 0..1; lengths may differ")


class FramesResponse(BaseModel):
    frames: list[list[list[list[list[float]]]]] = Field(
        description="One forecast per sequence: the next K frames (K, C, H, W) in 0..1")


class ErrorResponse(BaseModel):
    error: str


def parse_frames(body: Any, frame_shape: tuple[int, int, int], options: ServeOptions) -> list[np.ndarray]:
    """The sequences of a ``/v1/frames`` body as float32 (L_i, C, H, W), or an ``ApiError`` naming the problem."""
    _, sequences = request_batch(body, "frames", ("frames",), "a list of sequences of frames", "sequences", options)
    shape = "(L, {}, {}, {})".format(*frame_shape)
    out = []
    for i, sequence in enumerate(sequences):
        try:
            array = np.asarray(sequence)
        except ValueError:
            raise ApiError(422, f"frames[{i}]: expected frames of shape {shape}, got nested lists of uneven "
                                "lengths") from None
        if array.dtype.kind not in "iuf":
            got = "booleans" if array.dtype.kind == "b" else "other values"
            raise ApiError(422, f"frames[{i}]: expected numbers, got {got}")
        if array.ndim != 4 or array.shape[1:] != frame_shape or array.shape[0] < 1:
            raise ApiError(422, f"frames[{i}]: expected frames of shape {shape}, got {array.shape}")
        if array.shape[0] > options.max_sequence_length:
            raise ApiError(422, f"frames[{i}]: expected at most {options.max_sequence_length} frames "
                                f"(--max-sequence-length), got {array.shape[0]}")
        with np.errstate(over="ignore"):
            array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ApiError(422, f"frames[{i}]: expected finite numbers (within float32), got NaN, infinity or a "
                                "larger value")
        out.append(array)
    return out


def add_frames_routes(app: Any, backend: Any, options: ServeOptions, call: Any) -> None:
    """Add ``POST /v1/frames`` for ``backend`` (``lstmkit.serve.seq2seq_frames_backends``) to ``app``."""
    details = backend.info.details
    frame_shape = (details["channels"], details["frame_size"], details["frame_size"])
    body = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": FramesRequest.model_json_schema()}}}}
    errors = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 429, 503, 504)}

    @app.post("/v1/frames", summary="Forecast the next frames of each sequence", response_model=FramesResponse,
              responses=errors, openapi_extra=body)
    async def frames(request: Request) -> JSONResponse:
        sequences = parse_frames(await read_json(request), frame_shape, options)
        predicted = await call(backend.forecast, sequences)
        return JSONResponse({"frames": [p.tolist() for p in predicted]})
