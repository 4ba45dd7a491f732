"""Issue 17's attacks on the server's values, through a real server on 127.0.0.1: values that overflow once
standardised (item 2), huge JSON integers (item 3). Each was a 500 (or a silent wrong 200) before."""

import json

import httpx
import numpy as np
import pytest
import torch

from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.export import export_onnx
from lstmkit.model_folder import save_model
from lstmkit.models import build_model
from lstmkit.serve import create_app, load_backend
from serve_helpers import FEATURES, LABELS, OPTIONS, SPEC, LiveServer

OVERFLOWS = 3.4e38  # a float32, but (x - mean) / std with std 0.01 is not


@pytest.fixture(scope="module")
def narrow_model(tmp_path_factory):
    """A model whose training data had std 0.01: large float32 values overflow when standardised."""
    torch.manual_seed(0)
    config = Config(model=ModelConfig(hidden_size=8))
    module = build_model(config.model, SPEC).eval()
    x = np.random.default_rng(0).normal(0.0, 0.01, size=(16, 9, FEATURES)).astype(np.float32)
    folder = tmp_path_factory.mktemp("narrow") / "model"
    return save_model(folder, module, config, SPEC, LABELS, Standardizer().fit(x))


@pytest.fixture(scope="module", params=["torch", "onnx"])
def narrow_server(request, narrow_model, tmp_path_factory):
    path = narrow_model if request.param == "torch" else export_onnx(
        narrow_model, tmp_path_factory.mktemp("narrow-onnx") / "model.onnx").path
    backend = load_backend(path)
    assert backend.name == request.param and backend.info.standardizer is not None
    with LiveServer(create_app(backend, OPTIONS)) as live:
        yield live


def _steps(value, n=2):
    steps = [[0.0] * FEATURES for _ in range(n)]
    steps[-1][2] = value
    return steps


def test_a_value_that_overflows_once_standardised_is_a_422_on_both_backends(narrow_server):
    with httpx.Client(base_url=narrow_server.url, timeout=30) as client:
        response = client.post("/v1/predict", json={"inputs": [_steps(0.0), _steps(OVERFLOWS)]})
        assert response.status_code == 422, response.text
        assert response.json()["error"].startswith(
            "inputs[1][1][2]: expected a value that stays within float32 once standardised with the training "
            "statistics (mean ")
        assert response.json()["error"].endswith("got 3.4e+38")
        assert client.post("/v1/predict", json={"inputs": [_steps(0.01)]}).status_code == 200


def test_a_failed_step_leaves_the_session_unchanged(narrow_server):
    with httpx.Client(base_url=narrow_server.url, timeout=30) as client:
        sid = client.post("/v1/sessions").json()["id"]
        first = client.post(f"/v1/sessions/{sid}/step", json={"inputs": _steps(0.01)})
        assert first.status_code == 200 and first.json()["steps"] == 2
        bad = client.post(f"/v1/sessions/{sid}/step", json={"inputs": _steps(-OVERFLOWS, 3)})
        assert bad.status_code == 422 and "once standardised" in bad.json()["error"]
        assert client.get(f"/v1/sessions/{sid}").json()["steps"] == 2
        after = client.post(f"/v1/sessions/{sid}/step", json={"inputs": _steps(0.01, 1)})
        assert after.status_code == 200, after.text  # before: a 500 forever
        assert after.json()["outputs"][0]["step"] == 2


class _NaNBackend:
    """A backend whose outputs (and states) are NaN whenever an input holds 7.0: what an overflow inside a
    network looks like, whatever checks ran before it."""

    def __init__(self, backend):
        self._backend = backend

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def predict(self, x, lengths):
        out = self._backend.predict(x, lengths)
        out[(x == 7.0).any(axis=(1, 2))] = np.nan
        return out

    def steps(self, x, lengths, h, c):
        p, h, c = self._backend.steps(x, lengths, h, c)
        bad = (x == 7.0).any(axis=(1, 2))
        p[bad], h[:, bad], c[:, bad] = np.nan, np.nan, np.nan
        return p, h, c


def test_non_finite_model_outputs_are_a_422_and_never_enter_a_session(model_dir):
    with LiveServer(create_app(_NaNBackend(load_backend(model_dir)), OPTIONS)) as live, \
            httpx.Client(base_url=live.url, timeout=30) as client:
        response = client.post("/v1/predict", json={"inputs": [_steps(1.0), _steps(7.0)]})
        assert response.status_code == 422 and response.json()["error"].startswith(
            "inputs[1]: the model's output is not finite for these values")
        sid = client.post("/v1/sessions").json()["id"]
        assert client.post(f"/v1/sessions/{sid}/step", json={"inputs": _steps(1.0)}).status_code == 200
        bad = client.post(f"/v1/sessions/{sid}/step", json={"inputs": _steps(7.0)})
        assert bad.status_code == 422 and "(the session is unchanged)" in bad.json()["error"]
        good = client.post(f"/v1/sessions/{sid}/step", json={"inputs": _steps(1.0, 1)})
        assert good.status_code == 200 and good.json()["steps"] == 3, good.text


@pytest.mark.parametrize("digits", [40, 400, 4000])
def test_a_huge_json_integer_is_a_422_and_keeps_the_connection(client, digits):
    body = '{"inputs": [[[1, 2, ' + "9" * digits + ', 4, 5]]]}'
    for _ in range(3):  # on the same keep-alive connection
        response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json() == {"error": f"inputs[0][0][2]: expected a finite number, got an integer of {digits} "
                                            "digits, beyond float32"}
    assert client.post("/v1/predict", json={"inputs": [[[1, 2, 3, 4, 5]]]}).status_code == 200


def test_an_integer_beyond_python_s_digit_limit_is_a_400_not_a_500(client):
    body = '{"inputs": [[[' + "9" * 5000 + "]]]}"
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"].startswith("request body: expected JSON")
    json.loads(response.text)
