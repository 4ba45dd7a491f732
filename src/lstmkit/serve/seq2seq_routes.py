"""``POST /v1/translate``: texts in, decoded texts out (a seq2seq model), greedy or beam search.

Request ``{"texts": ["3 March 2021", ...], "beam": 1, "attention": false}``: ``texts`` (1 to ``--max-batch``
of them, each with 1 to ``--max-sequence-length`` tokens), ``beam`` (1: greedy; up to 16) and ``attention``
(also return each output token's attention over the source tokens). Answer ``{"translations": [{"text":
"2021-03-03"}, ...]}``, one per text, as ``lstmkit.load(folder).translate(text, beam).text``; with
``attention``, each also holds ``source_tokens``, ``output_tokens`` and ``attention`` (one row per output
token). Bad input: 400 (not a JSON object, unknown key, no ``texts``) or 422 (a value), naming it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import ApiError, read_json, request_batch

__all__ = ["MAX_BEAM", "TranslateRequest", "TranslateResponse", "add_seq2seq_routes", "parse_translate"]

MAX_BEAM = 16


class TranslateRequest(BaseModel):
    texts: list[str] = Field(description="Source texts, each tokenised as in training (characters or words)")
    beam: int = Field(default=1, ge=1, le=MAX_BEAM, description="1: greedy decoding; more: beam search")
    attention: bool = Field(default=False, description="Also return the attention of each output token")


class Translation(BaseModel):
    text: str
    source_tokens: list[str] | None = Field(default=None, description="With attention: the source tokens")
    output_tokens: list[str] | None = Field(default=None, description="With attention: the output ids' tokens")
    attention: list[list[float]] | None = Field(
        default=None, description="With attention: one row per output token over the source tokens")


class TranslateResponse(BaseModel):
    translations: list[Translation]


class ErrorResponse(BaseModel):
    error: str


def parse_translate(body: Any, tokens: str, options: ServeOptions) -> tuple[list[str], int, bool]:
    """``(texts, beam, attention)`` of a ``/v1/translate`` body, or an ``ApiError`` naming what is wrong."""
    _, texts = request_batch(body, "texts", ("texts", "beam", "attention"), "a list of strings", "strings", options)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(422, f"texts[{i}]: expected a string, got a JSON {type(text).__name__}")
        count = len(text) if tokens == "char" else len(text.split())
        if not 1 <= count <= options.max_sequence_length:
            raise ApiError(422, f"texts[{i}]: expected 1 to {options.max_sequence_length} {tokens} tokens "
                                f"(--max-sequence-length), got {count}")
    beam = body.get("beam", 1)
    if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM:
        raise ApiError(422, f"beam: expected an integer from 1 (greedy) to {MAX_BEAM}, got {beam!r}")
    attention = body.get("attention", False)
    if not isinstance(attention, bool):
        raise ApiError(422, f"attention: expected true or false, got {attention!r}")
    return texts, beam, attention


def add_seq2seq_routes(app: Any, backend: Any, options: ServeOptions, call: Any) -> None:
    """Add ``POST /v1/translate`` for ``backend`` (``lstmkit.serve.seq2seq_frames_backends``) to ``app``."""
    tokens = backend.info.details["tokens"]
    body = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": TranslateRequest.model_json_schema()}}}}
    errors = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 429, 503, 504)}

    @app.post("/v1/translate", summary="Translate texts (greedy or beam search)", response_model=TranslateResponse,
              responses=errors, openapi_extra=body)
    async def translate(request: Request) -> JSONResponse:
        texts, beam, attention = parse_translate(await read_json(request), tokens, options)
        results = await call(backend.translate, texts, beam)
        out = []
        for result in results:
            item: dict[str, Any] = {"text": result.text}
            if attention:
                item.update(source_tokens=result.source_tokens, output_tokens=result.output_tokens,
                            attention=result.attention.tolist())
            out.append(item)
        return JSONResponse({"translations": out})
