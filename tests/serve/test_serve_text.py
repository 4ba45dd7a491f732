"""Serving a text classifier: raw texts in ``/v1/predict``, through a real server on 127.0.0.1, answered as
``TextModel.classify`` answers offline; the errors a text request can meet, each with its message."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import OPTIONS, LiveServer

from lstmkit.serve import create_app, load_backend
from lstmkit.tasks.text import TextModel


@pytest.fixture(scope="module")
def text_model(text_classifier_model) -> Path:
    """The text classifier trained once per session (tests/conftest.py), shared with the text CLI tests."""
    return text_classifier_model


@pytest.fixture(scope="module")
def client(text_model):
    with LiveServer(create_app(load_backend(text_model), OPTIONS)) as live, \
            httpx.Client(base_url=live.url, timeout=30) as c:
        yield c


def test_texts_are_classified_as_offline(client, text_model):
    texts = ["the film was great", "the film was dull", "great"]
    response = client.post("/v1/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = TextModel.load(text_model).classify(texts)
    assert [p["label"] for p in predictions] == [e["label"] for e in expected] == ["high", "low", "high"]
    for got, want in zip(predictions, expected):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    health = client.get("/healthz").json()
    assert health["inputs"] == "texts" and health["streaming"] is False and health["labels"] == ["high", "low"]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"inputs": [[[1.0]]]}, 400, "request body: unknown key 'inputs'; expected only 'texts' (a text model)"),
    ({}, 400, 'request body: expected the key "texts" holding ["text", ...]'),
    ({"texts": []}, 422, "texts: expected a non-empty list of strings, got []"),
    ({"texts": ["fine", 5]}, 422, "texts[1]: expected a string, got 5"),
    ({"texts": ["fine", "   "]}, 422, "texts[1]: expected at least one word token, got '   '"),
    ({"texts": ["good " * 41]}, 422, "texts[0]: expected at most 40 tokens (--max-sequence-length), got 41"),
    ({"texts": ["good"] * 17}, 422, "texts: expected at most 16 texts per request (--max-batch), got 17"),
])
def test_text_request_errors(client, body, status, message):
    response = client.post("/v1/predict", json=body)
    assert response.status_code == status
    assert response.json() == {"error": message}


def test_sessions_are_refused_for_a_text_model(client):
    response = client.post("/v1/sessions")
    assert response.status_code == 409
    assert "a text classifier reads whole texts" in response.json()["error"]


def test_a_text_model_exported_to_onnx_in_memory_answers_as_its_folder(text_model):
    texts = ["the film was great", "dull"]
    onnx, torch = load_backend(text_model, backend="onnx"), load_backend(text_model, backend="torch")
    assert (onnx.name, torch.name) == ("onnx", "torch")
    parsed = torch.io.parse_predict({"texts": texts}, OPTIONS)
    x = np.zeros((2, 4, 1), np.float32)
    for i, ids in enumerate(parsed.sequences):
        x[i, :len(ids)] = ids
    lengths = np.array([len(ids) for ids in parsed.sequences])
    np.testing.assert_allclose(onnx.predict(x, lengths), torch.predict(x, lengths), atol=1e-5)
