"""Every sequence task serves, from its model folder (torch) and from its exported files (onnx), through a real
server on 127.0.0.1: each answer equals ``lstmkit.load(...)``'s verb within 1e-4, sessions stream where the
model can, and a bad request gets a 4xx naming the problem."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch
from serve_helpers import OPTIONS, LiveServer
from task_folders import (
    TEXTS,
    forecaster_folder,
    next_symbols_folder,
    regressor_folder,
    text_folder,
)

import lstmkit
from lstmkit.export import export_onnx
from lstmkit.serve import create_app, load_backend

TOLERANCE = 1e-4
BACKENDS = ["torch", "onnx"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    return {
        "regressor": regressor_folder(root / "regressor"),
        "forecaster": forecaster_folder(root / "airline"),
        "text-classifier": text_folder(root / "reviews", "text-classifier", bidirectional=True, merge_mode="sum"),
        "tagger": text_folder(root / "tags", "tagger"),  # unidirectional: it streams
        "char-lm": text_folder(root / "chars", "char-lm"),
        "next-symbols": next_symbols_folder(root / "reber"),
    }


@pytest.fixture(scope="module")
def servers(folders, tmp_path_factory):
    """One server per task and backend, started on first use, all stopped at the end of the module."""
    started, stack = {}, []

    def get(task, backend):
        if (task, backend) not in started:
            folder = folders[task]
            model = folder if backend == "torch" else export_onnx(folder, folder.parent / f"{folder.parent.name}.onnx").path
            served = load_backend(model)
            assert served.name == backend
            live = LiveServer(create_app(served, OPTIONS)).__enter__()
            stack.append(live)
            started[task, backend] = httpx.Client(base_url=live.url, timeout=30)
        return started[task, backend]

    yield get
    for client in started.values():
        client.close()
    for live in stack:
        live.__exit__(None, None, None)


def ok(response):
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.mark.parametrize("backend", BACKENDS)
def test_regressor_predicts_and_streams_as_load_predict(servers, folders, backend):
    client = servers("regressor", backend)
    rng = np.random.default_rng(1)
    sequences = [rng.normal(3.0, 2.0, size=(n, 3)).astype(np.float32) for n in (7, 2, 5)]
    answer = ok(client.post("/v1/predict", json={"inputs": [s.tolist() for s in sequences]}))
    model = lstmkit.load(folders["regressor"])
    for got, s in zip(answer["predictions"], sequences):
        np.testing.assert_allclose(got["values"], model.predict(s[None])[0], atol=TOLERANCE)
    session = ok(client.post("/v1/sessions"))["id"]
    first = ok(client.post(f"/v1/sessions/{session}/step", json={"inputs": sequences[0][:3].tolist()}))
    rest = ok(client.post(f"/v1/sessions/{session}/step", json={"inputs": sequences[0][3:].tolist()}))
    assert [o["step"] for o in first["outputs"] + rest["outputs"]] == list(range(7)) and rest["steps"] == 7
    for t, output in enumerate(first["outputs"] + rest["outputs"]):
        np.testing.assert_allclose(output["values"], model.predict(sequences[0][None, :t + 1])[0], atol=TOLERANCE)
    response = client.post("/v1/predict", json={"inputs": [[[1.0, 2.0]]]})
    assert response.status_code == 422
    assert response.json() == {"error": "inputs[0][0]: expected 3 numbers (one per feature), got 2 numbers"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_forecaster_forecasts_raw_values_as_load_forecast(servers, folders, backend):
    client = servers("forecaster", backend)
    expected = lstmkit.load(folders["forecaster"]).forecast()  # the 12 months after the bundled series
    history = expected.history[-37:]  # the window of 36 and the lag-1 difference
    answer = ok(client.post("/v1/forecast", json={"inputs": [history.tolist(), expected.history[-40:].tolist()]}))
    assert answer["horizon"] == 12 and answer["series"] == ["passengers"]
    for forecast in answer["forecasts"]:  # older values than the 37 make no difference
        np.testing.assert_allclose(forecast, expected.forecast, atol=TOLERANCE)
    longer = lstmkit.load(folders["forecaster"]).forecast(horizon=30)  # fed back past the model's 12
    answer = ok(client.post("/v1/forecast", json={"inputs": [history.tolist()], "horizon": 30}))
    assert answer["horizon"] == 30
    np.testing.assert_allclose(answer["forecasts"][0], longer.forecast, rtol=1e-6)  # fed back in float32
    bad = client.post("/v1/forecast", json={"inputs": [history.tolist()], "horizon": 0})
    assert bad.status_code == 422
    assert bad.json() == {"error": "horizon: expected an integer in 1..40 (--max-sequence-length), got 0"}
    short = client.post("/v1/forecast", json={"inputs": [history[:5].tolist()]})
    assert short.status_code == 422
    assert short.json() == {"error": "inputs[0]: expected at least 37 steps (the window plus the differencing "
                                     "lag), got 5"}
    negative = history.copy()
    negative[3, 0] = -2.0
    response = client.post("/v1/forecast", json={"inputs": [negative.tolist()]})
    assert response.status_code == 422
    assert response.json() == {"error": "inputs[0][3][0]: expected a positive value (the model forecasts log "
                                        "values), got -2"}
    assert client.post("/v1/predict", json={"inputs": [history.tolist()]}).status_code == 404
    refused = client.post("/v1/sessions")
    assert refused.status_code == 409 and "use /v1/forecast" in refused.json()["error"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_classifier_classifies_texts_as_load_classify(servers, folders, backend):
    client = servers("text-classifier", backend)
    answer = ok(client.post("/v1/predict", json={"texts": TEXTS}))
    for got, want in zip(answer["predictions"], lstmkit.load(folders["text-classifier"]).classify(TEXTS)):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=TOLERANCE)
    response = client.post("/v1/predict", json={"texts": ["fine", 5]})
    assert response.status_code == 422 and response.json() == {"error": "texts[1]: expected a string, got 5"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tagger_tags_and_streams_as_load_tag(servers, folders, backend):
    client = servers("tagger", backend)
    model = lstmkit.load(folders["tagger"])
    answer = ok(client.post("/v1/predict", json={"texts": TEXTS}))
    for got, text, want in zip(answer["predictions"], TEXTS, model.tag(TEXTS)):
        assert (got["tokens"], got["labels"]) == (want["tokens"], want["labels"])
        ids = torch.tensor([model.tokenizer.encode(text)])
        with torch.no_grad():
            probabilities = torch.softmax(model.loaded.module(ids), -1)[0].max(-1).values.numpy()
        np.testing.assert_allclose(got["probabilities"], probabilities, atol=TOLERANCE)
    session = ok(client.post("/v1/sessions"))["id"]
    first = ok(client.post(f"/v1/sessions/{session}/step", json={"text": "Ada lives"}))
    rest = ok(client.post(f"/v1/sessions/{session}/step", json={"text": "in Paris"}))
    assert [o["label"] for o in first["outputs"] + rest["outputs"]] == model.tag(["Ada lives in Paris"])[0]["labels"]
    response = client.post(f"/v1/sessions/{session}/step", json={"inputs": [[1.0]]})
    assert response.status_code == 400
    assert response.json() == {"error": 'request body: expected a JSON object {"text": "the next tokens"}'}


@pytest.mark.parametrize("backend", BACKENDS)
def test_char_lm_generates_as_load_generate(servers, folders, backend):
    client = servers("char-lm", backend)
    model = lstmkit.load(folders["char-lm"])
    for temperature, seed in ((0.8, 3), (0.0, 0)):
        body = {"prompt": "the ", "length": 24, "temperature": temperature, "seed": seed}
        assert ok(client.post("/v1/generate", json=body))["text"] == model.generate(
            "the ", length=24, temperature=temperature, seed=seed)
    session = ok(client.post("/v1/sessions"))["id"]
    steps = ok(client.post(f"/v1/sessions/{session}/step", json={"text": "the"}))["outputs"]
    assert [o["step"] for o in steps] == [0, 1, 2] and all(0 < o["probability"] <= 1 for o in steps)
    response = client.post("/v1/generate", json={"prompt": "the ", "length": -1})
    assert response.status_code == 422
    assert response.json() == {"error": "length: expected an integer in 0..40 (--max-sequence-length), got -1"}
    assert client.post("/v1/predict", json={"texts": ["the"]}).status_code == 404


@pytest.mark.parametrize("backend", BACKENDS)
def test_next_symbols_answers_every_step_as_load_predict(servers, folders, backend):
    client = servers("next-symbols", backend)
    x = np.eye(7, dtype=np.float32)[[0, 3, 2, 5]]  # one sequence of 4 one-hot symbols
    answer = ok(client.post("/v1/predict", json={"inputs": [x.tolist(), x[:2].tolist()]}))
    expected = lstmkit.load(folders["next-symbols"]).predict(x[None])[0]  # (4, 7)
    np.testing.assert_allclose(answer["predictions"][0]["values"], expected, atol=TOLERANCE)
    np.testing.assert_allclose(answer["predictions"][1]["values"], expected[:2], atol=TOLERANCE)


def test_each_task_documents_its_own_schema(servers):
    documents = {task: servers(task, "onnx").get("/openapi.json").json()
                 for task in ("regressor", "forecaster", "tagger", "char-lm")}

    def request_schema(document, path):
        return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["title"]

    assert request_schema(documents["regressor"], "/v1/predict") == "ValuesRequest"
    assert request_schema(documents["forecaster"], "/v1/forecast") == "ForecastRequest"
    assert "/v1/predict" not in documents["forecaster"]["paths"]
    assert request_schema(documents["tagger"], "/v1/predict") == "TextsRequest"
    assert request_schema(documents["tagger"], "/v1/sessions/{session_id}/step") == "TextStepRequest"
    assert request_schema(documents["char-lm"], "/v1/generate") == "GenerateRequest"


def test_an_exported_text_model_without_its_tokenizer_is_refused_by_name(folders, tmp_path):
    from lstmkit.errors import LstmkitError

    result = export_onnx(folders["tagger"], tmp_path / "tags.onnx")
    result.paths["tokenizer.json"].unlink()
    with pytest.raises(LstmkitError, match=r"tags.onnx: expected its tokenizer.json beside it as "
                                           r"tags.tokenizer.json; export it again"):
        load_backend(result.path)


def _stream(client, messages):
    """Send JSON or binary ``messages`` over ``/v1/stream`` of the server behind ``client``; the answers, in order."""
    from websockets.sync.client import connect

    with connect(str(client.base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream") as ws:
        ws.send(json.dumps({"op": "open", "ref": 1}))
        session = json.loads(ws.recv(timeout=10))["id"]
        answers = []
        for message in messages:
            ws.send(message if isinstance(message, bytes) else json.dumps({**message, "id": session}))
            answers.append(json.loads(ws.recv(timeout=10)))
        return answers


def test_a_regressor_and_a_tagger_stream_over_the_websocket_as_over_http(servers, folders):
    rng = np.random.default_rng(2)
    steps = rng.normal(3.0, 2.0, size=(4, 3)).astype(np.float32)
    regressor = servers("regressor", "onnx")
    session = ok(regressor.post("/v1/sessions"))["id"]
    over_http = ok(regressor.post(f"/v1/sessions/{session}/step", json={"inputs": steps.tolist()}))["outputs"]
    (answer,) = _stream(regressor, [{"op": "step", "inputs": steps.tolist()}])
    assert answer["op"] == "output" and answer["steps"] == 4
    for got, want in zip(answer["outputs"], over_http):
        np.testing.assert_allclose(got["values"], want["values"], atol=1e-6)

    tagger = servers("tagger", "torch")
    from lstmkit.serve.frames import encode_steps

    answers = _stream(tagger, [{"op": "step", "text": "Ada lives"}, {"op": "step", "text": "in Paris"},
                               encode_steps([("0" * 32, 7, np.zeros((1, 1), np.float32))], 1)])
    assert [a["op"] for a in answers[:2]] == ["output", "output"], answers
    labels = [o["label"] for a in answers[:2] for o in a["outputs"]]
    assert labels == lstmkit.load(folders["tagger"]).tag(["Ada lives in Paris"])[0]["labels"]
    assert answers[2]["op"] == "error" and answers[2]["status"] == 400
    assert answers[2]["error"] == ('binary frames carry float32 steps; this model reads tokens: send JSON '
                                   '{"op": "step", "id": ..., "text": "the next tokens"} messages')
