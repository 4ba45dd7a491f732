"""How the service reads and answers each task's requests, chosen from what the task declares (``Task.schema``:
its ports and its verb), with one documented JSON schema each in ``/openapi.json``.

=================  ===========================  ======================================================================
declared           endpoint                     request -> answer
=================  ===========================  ======================================================================
values             ``POST /v1/predict``         ``{"inputs": [sequence, ...]}`` -> ``{"predictions": [{"values": [K]}]}``
                                                (per-step models: ``"values"`` holds K numbers per real step)
texts -> classes   ``POST /v1/predict``         ``{"texts": [...]}`` -> ``{"predictions": [{"label", "probability",
                                                "probabilities"}]}``
texts -> tags      ``POST /v1/predict``         ``{"texts": [...]}`` -> ``{"predictions": [{"tokens", "labels",
                                                "probabilities"}]}`` (the chosen label's probability per token)
forecast           ``POST /v1/forecast``        ``{"inputs": [history, ...], "horizon": H'}``, each history at least
                                                window + lag steps of S raw values -> ``{"forecasts": [H' steps of S
                                                values], "series", "horizon"}`` (H' defaults to the model's H)
generate           ``POST /v1/generate``        ``{"prompt", "length", "temperature", "seed"}`` -> ``{"text"}``, as
                                                ``lstmkit.load(...).generate`` samples it
=================  ===========================  ======================================================================

Streaming sessions (``/v1/sessions/{id}/step``) of a values model take ``{"inputs": [steps]}`` and answer
``{"values": [...]}`` per step; of a tagger ``{"text": "..."}`` -> the label of each token; of a char-lm
``{"text": "..."}`` -> after each character, the most likely ``next`` one and its probability.
Every problem is an ``ApiError`` (4xx) naming it, as in ``lstmkit.serve.validation``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from lstmkit.errors import DataError
from lstmkit.serve.backends import ModelInfo
from lstmkit.serve.options import ServeOptions
from lstmkit.serve.validation import (
    ApiError,
    check_token_counts,
    parse_predict,
    parse_steps,
    parse_texts,
    read_json,
)

__all__ = ["Parsed", "TaskIO", "task_io"]


# ---- the documented schemas ----


class ValuesRequest(BaseModel):
    inputs: list[list[list[float]]] = Field(description="Sequences (any lengths), each a list of steps of F numbers")


class ValuesPrediction(BaseModel):
    values: list[float] | list[list[float]] = Field(
        description="K predicted values; for a per-step model, K values after every real step")


class ValuesResponse(BaseModel):
    predictions: list[ValuesPrediction]


class TextsRequest(BaseModel):
    texts: list[str] = Field(description="Raw texts, split and encoded with the model's tokenizer")


class LabelPrediction(BaseModel):
    label: str
    probability: float
    probabilities: dict[str, float]


class LabelsResponse(BaseModel):
    predictions: list[LabelPrediction]


class TagPrediction(BaseModel):
    tokens: list[str]
    labels: list[str] = Field(description="The most likely label of each token")
    probabilities: list[float] = Field(description="The probability of each token's label")


class TagsResponse(BaseModel):
    predictions: list[TagPrediction]


class ForecastRequest(BaseModel):
    inputs: list[list[list[float]]] = Field(
        description="Histories, each a list of steps of S raw values (one per series), oldest first; at least the "
                    "window plus the differencing lag, of which the latest are read")
    horizon: int | None = Field(default=None, description="Steps to forecast (default the model's H); beyond H "
                                                          "the forecasts are fed back as history")


class ForecastResponse(BaseModel):
    forecasts: list[list[list[float]]] = Field(description="Per history, the horizon's steps of S values on the "
                                                           "raw scale")
    series: list[str]
    horizon: int


class GenerateRequest(BaseModel):
    prompt: str = Field(description="The text to continue (at least one token)")
    length: int = Field(default=100, description="Tokens to sample after the prompt")
    temperature: float = Field(default=1.0, description="Sampling temperature; 0 takes the most likely token")
    seed: int = Field(default=0, description="The same seed gives the same text")


class GenerateResponse(BaseModel):
    text: str = Field(description="The sampled continuation (the prompt not included)")


class TextStepRequest(BaseModel):
    text: str = Field(description="The next tokens of this stream, as text")


class ValuesStepOutput(BaseModel):
    step: int
    values: list[float]


class TagStepOutput(BaseModel):
    step: int
    label: str
    probability: float
    probabilities: dict[str, float]


class NextTokenStepOutput(BaseModel):
    step: int
    next: str = Field(description="The most likely next token")
    probability: float


# ---- reading and answering ----


@dataclass
class Parsed:
    """A request's inputs, one float32 (L_i, F) array each, and for texts their tokens."""

    sequences: list[np.ndarray]
    tokens: list[list[str]] | None = None
    horizon: int = 0
    """A forecast request's steps ahead."""


class TaskIO:
    """The ``/v1/predict`` and session-step requests of a model with numeric inputs and value outputs."""

    verb = "predict"
    predict_request: type[BaseModel] = ValuesRequest
    predict_response: type[BaseModel] = ValuesResponse
    step_request: type[BaseModel] = ValuesRequest
    step_output: type[BaseModel] = ValuesStepOutput

    def __init__(self, meta: dict[str, Any], info: ModelInfo) -> None:
        self.meta, self.info = meta, info
        self.per_step = len(meta["outputs"][0]["shape"]) == 3  # (N, L, K)

    @property
    def step_response(self) -> type[BaseModel]:
        """The documented answer of a session step: ``{"id", "steps", "outputs": [step_output, ...]}``."""
        return create_model(f"{self.step_output.__name__}s", id=(str, ...), steps=(int, ...),
                            outputs=(list[self.step_output], ...))

    def parse_predict(self, body: Any, options: ServeOptions) -> Parsed:
        return Parsed(parse_predict(body, self.info, options))

    def answer(self, outputs: np.ndarray, parsed: Parsed) -> dict[str, Any]:
        if self.per_step:
            return {"predictions": [{"values": row[:len(s)].tolist()} for row, s in zip(outputs, parsed.sequences)]}
        return {"predictions": [{"values": row.tolist()} for row in outputs]}

    def parse_step(self, body: Any, options: ServeOptions) -> np.ndarray:
        return parse_steps(body, self.info, options)

    def present_step(self, row: np.ndarray) -> dict[str, Any]:
        return {"values": row.tolist()}

    def register_routes(self, app: Any, state: dict[str, Any], options: ServeOptions, backend: Any) -> None:
        """Add the task's own endpoint (``/v1/forecast``, ``/v1/generate``); none for ``predict``."""


class TextIO(TaskIO):
    """Raw texts in, split and encoded with the model's tokenizer; classes out (one per text, or per token)."""

    predict_request = TextsRequest
    step_request = TextStepRequest

    def __init__(self, meta: dict[str, Any], info: ModelInfo) -> None:
        from lstmkit.data.text import Tokenizer
        from lstmkit.tasks.text import TextModel

        super().__init__(meta, info)
        tokenizer = Tokenizer.from_dict(meta["tokenizer"])
        self.text = TextModel(None, tokenizer)  # its tokens(): the splitting and its messages, without a network
        self.labels = list(meta.get("label_names") or [])
        self.predict_response = TagsResponse if self.per_step else LabelsResponse
        self.step_output = TagStepOutput

    def _encode(self, texts: list[str], where: str, options: ServeOptions) -> Parsed:
        try:
            tokens = self.text.tokens(texts, where)
        except DataError as exc:
            raise ApiError(422, str(exc)) from None
        encode = self.text.tokenizer.encode
        sequences = [np.asarray(encode(t), dtype=np.float32)[:, None] for t in tokens]
        check_token_counts(sequences, options)
        return Parsed(sequences, tokens)

    def parse_predict(self, body: Any, options: ServeOptions) -> Parsed:
        return self._encode(parse_texts(body, options), "texts", options)

    def _label(self, row: np.ndarray) -> dict[str, Any]:
        best = int(row.argmax())
        values = row.tolist()
        return {"label": self.labels[best], "probability": values[best],
                "probabilities": dict(zip(self.labels, values))}

    def answer(self, outputs: np.ndarray, parsed: Parsed) -> dict[str, Any]:
        if not self.per_step:
            return {"predictions": [self._label(row) for row in outputs]}
        predictions = []
        for row, text_tokens in zip(outputs, parsed.tokens):
            real = row[:len(text_tokens)]
            best = real.argmax(-1)
            predictions.append({"tokens": text_tokens, "labels": [self.labels[int(i)] for i in best],
                                "probabilities": real[np.arange(len(best)), best].tolist()})
        return {"predictions": predictions}

    def parse_step(self, body: Any, options: ServeOptions) -> np.ndarray:
        if not isinstance(body, dict) or set(body) != {"text"} or not isinstance(body["text"], str):
            raise ApiError(400, 'request body: expected a JSON object {"text": "the next tokens"}')
        (ids,) = self._encode([body["text"]], "text", options).sequences
        return ids

    def present_step(self, row: np.ndarray) -> dict[str, Any]:
        return self._label(row)


class GenerateIO(TextIO):
    """A language model: ``/v1/generate`` samples a continuation; sessions answer the most likely next token."""

    verb = "generate"
    step_output = NextTokenStepOutput

    def present_step(self, row: np.ndarray) -> dict[str, Any]:
        best = int(row.argmax())
        return {"next": self.labels[best], "probability": float(row[best])}

    def _request(self, body: Any, options: ServeOptions) -> tuple[list[int], int, float, int]:
        if not isinstance(body, dict):
            raise ApiError(400, 'request body: expected a JSON object {"prompt": "...", "length": N, '
                                '"temperature": T, "seed": S}')
        unknown = sorted(set(body) - {"prompt", "length", "temperature", "seed"})
        if unknown:
            raise ApiError(400, f"request body: unknown key {unknown[0]!r}; expected prompt, length, temperature, seed")
        prompt, length = body.get("prompt"), body.get("length", 100)
        temperature, seed = body.get("temperature", 1.0), body.get("seed", 0)
        if not isinstance(prompt, str):
            raise ApiError(422 if "prompt" in body else 400, "prompt: expected a string to continue, got "
                           + ("nothing" if prompt is None else type(prompt).__name__))
        limit = options.max_sequence_length
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= limit:
            raise ApiError(422, f"length: expected an integer in 0..{limit} (--max-sequence-length), got {length!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
                0 <= temperature < math.inf):
            raise ApiError(422, f"temperature: expected a finite number >= 0, got {temperature!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ApiError(422, f"seed: expected a non-negative integer, got {seed!r}")
        ids = self.text.tokenizer.encode(prompt)
        if not ids:
            raise ApiError(422, "prompt: expected at least one character, got an empty prompt")
        if len(ids) > limit:
            raise ApiError(422, f"prompt: expected at most {limit} tokens (--max-sequence-length), got {len(ids)}")
        return ids, length, float(temperature), seed

    def generate(self, backend: Any, ids: list[int], length: int, temperature: float, seed: int) -> str:
        """Sample as ``lstmkit.tasks.text.TextModel.generate`` does, on the backend's step call (in its thread).

        The backends answer probabilities p; ``softmax(log p / T)`` is ``softmax(logits / T)``, so the same seed
        gives the same tokens."""
        import torch

        from lstmkit.data.text import PAD_ID, UNK_ID

        layers = self.info.num_layers
        h = np.zeros((layers, 1, self.info.state_sizes[0]), np.float32)
        c = np.zeros((layers, 1, self.info.state_sizes[1]), np.float32)
        x = np.asarray(ids, np.float32)[None, :, None]  # (1, K, 1)
        probabilities, h, c = backend.steps(x, np.array([len(ids)]), h, c)
        generator = torch.Generator().manual_seed(seed)
        out: list[int] = []
        for _ in range(length):
            with np.errstate(divide="ignore"):
                logits = torch.from_numpy(np.log(probabilities[:, -1].astype(np.float32)))  # (1, V)
            logits[:, [PAD_ID, UNK_ID]] = float("-inf")
            if temperature == 0:
                token = int(logits.argmax(-1))
            else:
                token = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))
            out.append(token)
            probabilities, h, c = backend.steps(np.array([[[token]]], np.float32), np.array([1]), h, c)
        return self.text.tokenizer.decode(out)

    def register_routes(self, app: Any, state: dict[str, Any], options: ServeOptions, backend: Any) -> None:
        @app.post("/v1/generate", summary="Continue a prompt, sampling one token at a time",
                  response_model=GenerateResponse, responses=_errors(),
                  openapi_extra=_body(GenerateRequest))
        async def generate(request: Request) -> JSONResponse:
            ids, length, temperature, seed = self._request(await read_json(request), options)
            executor = state["predictor"].executor  # the one model thread
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(executor, self.generate, backend, ids, length, temperature, seed)
            return JSONResponse({"text": text})


class ForecastIO(TaskIO):
    """A forecaster: ``/v1/forecast`` takes raw histories and answers raw-scale forecasts (micro-batched)."""

    verb = "forecast"
    predict_request = ForecastRequest
    predict_response = ForecastResponse

    def __init__(self, meta: dict[str, Any], info: ModelInfo) -> None:
        super().__init__(meta, info)
        forecast = meta.get("forecast")
        if isinstance(forecast, dict):  # a model folder's meta.json
            scaler = forecast["scaler"]
            self.needed, self.log = int(forecast["window"]) + int(scaler["difference"]), bool(scaler["log"])
            self.log_offset = float(scaler.get("log_offset", 0.0))
            self.series, self.horizon = list(forecast.get("series") or []), int(forecast["horizon"])
        else:  # an exported graph's metadata
            self.needed, self.log = int(meta["min_history"]), bool(meta["log"])
            self.log_offset = float(meta.get("log_offset", 0.0))
            self.series, self.horizon = list(meta.get("series") or []), int(meta["horizon"])

    def parse_predict(self, body: Any, options: ServeOptions) -> Parsed:
        horizon = self.horizon
        if isinstance(body, dict) and "horizon" in body:
            body = dict(body)
            horizon = body.pop("horizon")
            limit = options.max_sequence_length
            if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= limit:
                raise ApiError(422, f"horizon: expected an integer in 1..{limit} (--max-sequence-length), "
                                    f"got {horizon!r}")
        histories = parse_predict(body, self.info, options)
        for i, history in enumerate(histories):
            if len(history) < self.needed:
                raise ApiError(422, f"inputs[{i}]: expected at least {self.needed} steps (the window plus the "
                                    f"differencing lag), got {len(history)}")
            if self.log and not (history + self.log_offset > 0).all():
                t, s = (int(k) for k in np.argwhere(history + self.log_offset <= 0)[0])
                wanted = (f"a value above {-self.log_offset:g} (the model forecasts log(y + {self.log_offset:g}))"
                          if self.log_offset else "a positive value (the model forecasts log values)")
                raise ApiError(422, f"inputs[{i}][{t}][{s}]: expected {wanted}, got {history[t, s]:g}")
        return Parsed([h[-self.needed:] for h in histories], horizon=horizon)

    def answer(self, outputs: np.ndarray, parsed: Parsed) -> dict[str, Any]:
        return {"forecasts": outputs.tolist(), "series": self.series, "horizon": parsed.horizon}

    async def forecast(self, predictor: Any, parsed: Parsed) -> np.ndarray:
        """``parsed.horizon`` steps (n, horizon, S): the model's H at a time (one micro-batched call each), each
        chunk appended to the histories for the next, as ``lstmkit.tasks.forecasting.forecast_path`` does."""
        histories, chunks, made = parsed.sequences, [], 0
        while made < parsed.horizon:
            ahead = await predictor.predict(histories)  # (n, H, S)
            chunks.append(ahead)
            made += ahead.shape[1]
            histories = [np.concatenate([h, a.astype(np.float32)])[-self.needed:] for h, a in zip(histories, ahead)]
        return np.concatenate(chunks, axis=1)[:, :parsed.horizon]

    def register_routes(self, app: Any, state: dict[str, Any], options: ServeOptions, backend: Any) -> None:
        @app.post("/v1/forecast", summary="Forecast the next values of a batch of raw histories",
                  response_model=ForecastResponse, responses=_errors(), openapi_extra=_body(ForecastRequest))
        async def forecast(request: Request) -> JSONResponse:
            predictor = state["predictor"]
            with predictor.arrival(request.scope):
                parsed = self.parse_predict(await read_json(request), options)
            return JSONResponse(self.answer(await self.forecast(predictor, parsed), parsed))


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _errors() -> dict[int, Any]:
    from lstmkit.serve.app import ErrorResponse

    return {code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 429, 503, 504)}


def task_io(meta: dict[str, Any], info: ModelInfo) -> TaskIO:
    """The reading and answering of a model, from its declared ports and verb (``meta``: ``inputs``, ``outputs``,
    ``verb``, and for texts ``tokenizer``)."""
    verb = meta.get("verb", "predict")
    if verb == "forecast":
        return ForecastIO(meta, info)
    if verb == "generate":
        return GenerateIO(meta, info)
    if meta["inputs"][0]["dtype"] in ("string", "int64"):
        return TextIO(meta, info)
    return TaskIO(meta, info)
