"""seq2seq and frames served: each tiny recipe trained, exported, served from its model folder (PyTorch) and
from its export (ONNX Runtime) on 127.0.0.1, and the answers equal ``lstmkit.load(...)``'s; bad input gets
a 4xx that names the problem."""

import dataclasses
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import OPTIONS, LiveServer

import lstmkit
from lstmkit.cli import main
from lstmkit.errors import LstmkitError
from lstmkit.export import export_onnx
from lstmkit.serve import create_app, load_backend

CONFIGS = Path(__file__).parent.parent.parent / "configs"
COMMON = ["train.progress=false", "train.num_threads=1", "train.epochs=2", "train.report=false",
          "train.tensorboard=false"]
RECIPES = {  # the tiny settings of tests/runs/test_task_matrix.py
    "seq2seq": ("dates.toml", ["data.samples=128", "data.val_samples=16", "data.test_samples=16",
                               "model.hidden_size=8", "model.embedding_size=4", "train.batch_size=32"]),
    "frames": ("moving_digits.toml", ["data.samples=16", "data.val_samples=4", "data.test_samples=4",
                                      "data.frame_size=16", "data.digit_size=8", "data.input_frames=3",
                                      "data.output_frames=2", "data.speed=1.0", "model.hidden_channels=[2]",
                                      "model.warp_kernel=3", "train.batch_size=4"]),
}
OPTIONS_FOR_FRAMES = dataclasses.replace(OPTIONS, max_payload_bytes=1 << 20)  # frames take more bytes
TEXTS = ["3 March 2021", "2021.03.04", "Dec 25, 1999", "x"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each task's tiny recipe trained (lstmkit train) and exported (lstmkit export): task -> (folder, onnx)."""
    out = {}
    for task, (recipe, overrides) in RECIPES.items():
        root = tmp_path_factory.mktemp(task)
        sets = [a for o in [*COMMON, *overrides] for a in ("--set", o)]
        assert main(["train", str(CONFIGS / recipe), "--out", str(root / "run"), *sets]) == 0
        out[task] = (root / "run" / "model", export_onnx(root / "run" / "model", root / f"{task}.onnx").path)
    return out


@pytest.fixture(scope="module", params=["torch", "onnx"])
def servers(request, trained):
    """A server of each task on one backend: task -> base URL."""
    live = {}
    try:
        for task, (folder, onnx_file) in trained.items():
            backend = load_backend(folder if request.param == "torch" else onnx_file)
            assert backend.name == request.param
            live[task] = LiveServer(create_app(backend, OPTIONS_FOR_FRAMES)).__enter__()
        yield {task: server.url for task, server in live.items()}
    finally:
        for server in live.values():
            server.__exit__(None, None, None)


def post(url, path, body):
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.post(path, json=body)


@pytest.mark.parametrize("beam", [1, 3])
def test_translate_answers_what_lstmkit_load_translates(servers, trained, beam):
    translator = lstmkit.load(trained["seq2seq"][0])
    response = post(servers["seq2seq"], "/v1/translate", {"texts": TEXTS, "beam": beam, "attention": True})
    assert response.status_code == 200, response.text
    got = response.json()["translations"]
    for text, answer in zip(TEXTS, got, strict=True):
        want = translator.translate(text, beam)
        assert answer["text"] == want.text
        assert answer["output_tokens"] == want.output_tokens and answer["source_tokens"] == want.source_tokens
        np.testing.assert_allclose(answer["attention"], want.attention, atol=1e-4)
    plain = post(servers["seq2seq"], "/v1/translate", {"texts": TEXTS[:1]}).json()
    assert plain == {"translations": [{"text": translator.translate(TEXTS[0]).text}]}
    with httpx.Client(base_url=servers["seq2seq"]) as client:
        assert 'lstmkit_requests_total{endpoint="/v1/translate",method="POST",status="200"}' in client.get(
            "/metrics").text


def test_frames_answers_what_lstmkit_load_predicts(servers, trained):
    forecaster = lstmkit.load(trained["frames"][0])
    rng = np.random.default_rng(0)
    sequences = [rng.random((3, 1, 16, 16), dtype=np.float32), rng.random((5, 1, 16, 16), dtype=np.float32),
                 rng.random((1, 1, 16, 16), dtype=np.float32)]
    response = post(servers["frames"], "/v1/frames", {"frames": [s.tolist() for s in sequences]})
    assert response.status_code == 200, response.text
    got = response.json()["frames"]
    assert len(got) == 3
    for sequence, answer in zip(sequences, got):
        assert np.asarray(answer).shape == (2, 1, 16, 16)
        np.testing.assert_allclose(answer, forecaster.predict(sequence[None])[0], atol=1e-4)


@pytest.mark.parametrize("task, path, body, status, message", [
    ("seq2seq", "/v1/translate", {"texts": ["3 March", ""]}, 422,
     "texts[1]: expected 1 to 40 char tokens (--max-sequence-length), got 0"),
    ("seq2seq", "/v1/translate", {"texts": ["3 March"], "beam": 0}, 422,
     "beam: expected an integer from 1 (greedy) to 16, got 0"),
    ("seq2seq", "/v1/translate", {"text": ["3 March"]}, 400,
     "request body: unknown key 'text'; expected 'texts', 'beam', 'attention'"),
    ("seq2seq", "/v1/translate", {"texts": ["3 March"] * 17}, 422,
     "texts: expected a list of 1 to 16 strings (--max-batch), got 17 strings"),
    ("seq2seq", "/v1/translate", [], 400, 'request body: expected a JSON object {"texts": [...]}, got a JSON list'),
    ("frames", "/v1/frames", {}, 400, 'request body: expected the key "frames" holding a list of sequences of frames'),
    ("seq2seq", "/v1/predict", {"inputs": [[[1.0]]]}, 404,
     "/v1/predict: a seq2seq model answers POST /v1/translate (see /openapi.json)"),
    ("frames", "/v1/frames", {"frames": [[[[[0.5] * 16] * 16]], [[[[0.5] * 8] * 8]]]}, 422,
     "frames[1]: expected frames of shape (L, 1, 16, 16), got (1, 1, 8, 8)"),
    ("frames", "/v1/frames", {"frames": [[[[[1e39] * 16] * 16]]]}, 422,
     "frames[0]: expected finite numbers (within float32), got NaN, infinity or a larger value"),
    ("frames", "/v1/frames", {"frames": "pixels"}, 422,
     "frames: expected a list of 1 to 16 sequences (--max-batch), got a JSON str"),
])
def test_bad_input_gets_a_4xx_naming_the_problem(servers, task, path, body, status, message):
    response = post(servers[task], path, body)
    assert response.status_code == status and response.json() == {"error": message}


def test_openapi_documents_one_schema_per_task_and_healthz_names_the_endpoint(servers):
    with httpx.Client(base_url=servers["seq2seq"]) as client:
        spec = client.get("/openapi.json").json()
        assert client.get("/healthz").json()["endpoint"] == "/v1/translate"
    schema = spec["paths"]["/v1/translate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"texts", "beam", "attention"} and "/v1/predict" not in spec["paths"]
    with httpx.Client(base_url=servers["frames"]) as client:
        spec = client.get("/openapi.json").json()
        health = client.get("/healthz").json()
    assert (health["endpoint"], health["frame_size"], health["output_frames"]) == ("/v1/frames", 16, 2)
    assert "frames" in spec["paths"]["/v1/frames"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]


def test_backends_refuse_what_they_cannot_serve(trained):
    _, onnx_file = trained["seq2seq"]
    with pytest.raises(LstmkitError, match="--backend torch needs a model folder"):
        load_backend(onnx_file, "torch")
    step_file = onnx_file.with_name("seq2seq.decoder_step.onnx")
    with pytest.raises(LstmkitError, match="expected the encoder file of an exported seq2seq model"):
        load_backend(step_file)


def test_backend_onnx_with_a_model_folder_exports_in_memory(trained):
    folder, _ = trained["seq2seq"]
    backend = load_backend(folder, "onnx")
    assert backend.name == "onnx" and backend.info.source.endswith("(exported to ONNX in memory)")
    translator = lstmkit.load(folder)
    assert [t.text for t in backend.translate(TEXTS, 2)] == [translator.translate(text, 2).text for text in TEXTS]
    folder, _ = trained["frames"]
    backend = load_backend(folder, "onnx")
    sequence = np.random.default_rng(3).random((4, 1, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(backend.forecast([sequence])[0], lstmkit.load(folder).predict(sequence[None])[0],
                               atol=1e-4)
