"""The HTTP service, through a real server and client, with the PyTorch and the ONNX Runtime backend."""

import asyncio
import json
import re
import time

import httpx
import numpy as np
import pytest

from serve_helpers import FEATURES, LABELS, LiveServer, OPTIONS, make_folder, metric, offline_probabilities, offline_steps
from lstmkit.serve import ServeOptions, create_app, load_backend


def sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(3.0, 2.0, size=(n, FEATURES)).astype(np.float32) for n in lengths]


def probabilities_of(predictions):
    return np.array([[p["probabilities"][label] for label in LABELS] for p in predictions])


def test_healthz_and_openapi(client, server):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["backend"] == server.backend
    assert health["labels"] == LABELS and health["input_size"] == FEATURES and health["streaming"] is True
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/sessions", "/v1/sessions/{session_id}/step", "/v1/sessions/{session_id}",
            "/healthz", "/metrics"} <= set(schema["paths"])
    assert "requestBody" in schema["paths"]["/v1/predict"]["post"]


def test_predict_variable_lengths_matches_pytorch(client, reference):
    batch = sequences([7, 1, 12, 3])
    response = client.post("/v1/predict", json={"inputs": [s.tolist() for s in batch]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = offline_probabilities(reference, batch)
    np.testing.assert_allclose(probabilities_of(predictions), expected, atol=1e-5, rtol=0)
    assert [p["label"] for p in predictions] == [LABELS[i] for i in expected.argmax(1)]
    assert all(p["probability"] == max(p["probabilities"].values()) for p in predictions)


def _body(steps):
    return json.dumps({"inputs": [steps]})


GOOD_STEP = [0.5] * FEATURES
BAD_REQUESTS = [
    ("wrong feature count", json.dumps({"inputs": [[GOOD_STEP, [1.0] * (FEATURES - 1)]]}), 422,
     rf"^inputs\[0\]\[1\]: expected {FEATURES} numbers \(one per feature\), got {FEATURES - 1} numbers$"),
    ("NaN", _body([GOOD_STEP, [1.0, float("nan"), 0, 0, 0]]), 422,
     r"^inputs\[0\]\[1\]\[1\]: expected a finite number, got NaN$"),
    ("Infinity", _body([[1.0, 2.0, 3.0, 4.0, float("inf")]]), 422,
     r"^inputs\[0\]\[0\]\[4\]: expected a finite number, got Infinity$"),
    ("beyond float32", _body([[1.0, 2.0, 3.0, 4.0, 1e39]]), 422, r"expected a finite number, got 1e\+39, beyond float32"),
    ("a string", _body([[1.0, "abc", 3.0, 4.0, 5.0]]), 422, r'^inputs\[0\]\[0\]\[1\]: expected a number, got "abc"$'),
    ("a boolean", _body([[1.0, 2.0, True, 4.0, 5.0]]), 422, r"^inputs\[0\]\[0\]\[2\]: expected a number, got true$"),
    ("not JSON", "{inputs: nope", 400, r"^request body: expected JSON, got invalid JSON"),
    ("no inputs key", json.dumps({"input": []}), 400, r"unknown key 'input'; expected only 'inputs'"),
    ("a list body", json.dumps([1, 2]), 400, r'expected a JSON object \{"inputs": .*\}, got a JSON list'),
    ("empty body", "", 400, r"got an empty body"),
    ("no sequences", json.dumps({"inputs": []}), 422, r"^inputs: expected a non-empty list of sequences, got \[\]$"),
    ("an empty sequence", json.dumps({"inputs": [[]]}), 422, r"^inputs\[0\]: expected at least one step, got 0$"),
    ("too long", _body([GOOD_STEP] * (OPTIONS.max_sequence_length + 1)), 422,
     rf"^inputs\[0\]: expected at most {OPTIONS.max_sequence_length} steps \(--max-sequence-length\), got 41$"),
    ("too many sequences", json.dumps({"inputs": [[GOOD_STEP]] * (OPTIONS.max_batch + 1)}), 422,
     rf"^inputs: expected at most {OPTIONS.max_batch} sequences per request \(--max-batch\), got 17$"),
    ("oversized payload", json.dumps({"inputs": [[GOOD_STEP] * 30] * 200}), 413,
     rf"^request body: expected at most {OPTIONS.max_payload_bytes} bytes \(--max-payload-bytes\), got \d+$"),
]


@pytest.mark.parametrize("what, body, status, message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_predict_requests_get_a_clear_4xx(client, what, body, status, message):
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert re.search(message, response.json()["error"]), response.json()["error"]
    assert client.get("/healthz").status_code == 200  # and the server keeps serving


def test_an_oversized_body_without_content_length_is_refused(client):
    def chunks():
        for _ in range(100):
            yield b" " * 1000

    response = client.post("/v1/predict", content=chunks())
    assert response.status_code == 413
    assert "got more" in response.json()["error"]


def test_unknown_path_and_method(client):
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and response.json() == {"error": "GET /v2/nothing: Not Found"}
    assert client.get("/v1/predict").status_code == 405


def test_session_outputs_equal_the_offline_forward(client, reference):
    stream = sequences([9], seed=3)[0]
    opened = client.post("/v1/sessions")
    assert opened.status_code == 201
    session = opened.json()["id"]
    assert opened.json()["steps"] == 0
    outputs = []
    for start, stop in [(0, 1), (1, 4), (4, 5), (5, 9)]:  # one step, several, one, the rest
        response = client.post(f"/v1/sessions/{session}/step", json={"inputs": stream[start:stop].tolist()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == session and body["steps"] == stop
        assert [o["step"] for o in body["outputs"]] == list(range(start, stop))
        outputs += body["outputs"]
    expected = offline_steps(reference, stream)  # (9, C) from one whole-sequence pass
    np.testing.assert_allclose(probabilities_of(outputs), expected, atol=1e-5, rtol=0)
    # the last step's output is the whole sequence's prediction
    np.testing.assert_allclose(expected[-1], offline_probabilities(reference, [stream])[0], atol=1e-5, rtol=0)

    info = client.get(f"/v1/sessions/{session}").json()
    assert info["steps"] == 9 and info["ttl_seconds"] == OPTIONS.session_ttl
    deleted = client.delete(f"/v1/sessions/{session}")
    assert deleted.status_code == 200 and deleted.json() == {"id": session, "deleted": True, "steps": 9}
    gone = client.post(f"/v1/sessions/{session}/step", json={"inputs": [GOOD_STEP]})
    assert gone.status_code == 404
    assert gone.json() == {"error": f"session {session}: not found (unknown or deleted)"}
    assert client.delete(f"/v1/sessions/{session}").status_code == 404


def test_bad_step_requests(client):
    session = client.post("/v1/sessions").json()["id"]
    cases = [
        ({"inputs": [[1.0] * (FEATURES + 1)]}, 422, rf"inputs\[0\]: expected {FEATURES} numbers \(one per feature\), got 6"),
        ({"inputs": [[1.0, 2.0, "x", 4.0, 5.0]]}, 422, r'inputs\[0\]\[2\]: expected a number, got "x"'),
        ({"inputs": []}, 422, r"inputs: expected at least one step, got 0"),
        ({"inputs": [GOOD_STEP] * 41}, 422, r"expected at most 40 steps"),
        ({"steps": []}, 400, r"unknown key 'steps'"),
    ]
    for body, status, message in cases:
        response = client.post(f"/v1/sessions/{session}/step", json=body)
        assert response.status_code == status, response.text
        assert re.search(message, response.json()["error"]), response.json()["error"]
    # the bad requests did not advance the stream
    assert client.get(f"/v1/sessions/{session}").json()["steps"] == 0
    unknown = client.post("/v1/sessions/0123456789abcdef/step", json={"inputs": [GOOD_STEP]})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "session 0123456789abcdef: not found (unknown or deleted)"}
    client.delete(f"/v1/sessions/{session}")


def test_concurrent_predictions_are_micro_batched_and_correct(server, reference):
    batches = [sequences([1 + (i % 7), 3 + (i % 5)], seed=100 + i) for i in range(48)]

    async def send_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*[
                client.post("/v1/predict", json={"inputs": [s.tolist() for s in batch]}) for batch in batches])

    before = httpx.get(f"{server.url}/metrics").text
    responses = asyncio.run(send_all())
    for batch, response in zip(batches, responses):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(probabilities_of(response.json()["predictions"]),
                                   offline_probabilities(reference, batch), atol=1e-5, rtol=0)
    after = httpx.get(f"{server.url}/metrics").text
    calls = metric(after, "lstmkit_predict_batch_size_count") - metric(before, "lstmkit_predict_batch_size_count")
    sequences_run = metric(after, "lstmkit_predict_batch_size_sum") - metric(before, "lstmkit_predict_batch_size_sum")
    assert sequences_run == 96
    assert calls < 48, f"{calls} model calls for 48 requests: no micro-batching"
    assert metric(after, 'lstmkit_requests_total{endpoint="/v1/predict",method="POST",status="200"}') >= 48


def test_concurrent_sessions_are_stepped_together(server, reference):
    streams = sequences([6] * 24, seed=7)

    async def run_all():
        # 24 sessions advance in lockstep: each round sends the next step of every session at once.
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            ids = [r.json()["id"] for r in await asyncio.gather(*[client.post("/v1/sessions") for _ in streams])]
            outputs = [[] for _ in streams]
            for t in range(6):
                responses = await asyncio.gather(*[
                    client.post(f"/v1/sessions/{session}/step", json={"inputs": [stream[t].tolist()]})
                    for session, stream in zip(ids, streams)])
                for i, response in enumerate(responses):
                    assert response.status_code == 200, response.text
                    outputs[i] += response.json()["outputs"]
            await asyncio.gather(*[client.delete(f"/v1/sessions/{session}") for session in ids])
            return outputs

    before = httpx.get(f"{server.url}/metrics").text
    results = asyncio.run(run_all())
    for stream, outputs in zip(streams, results):
        np.testing.assert_allclose(probabilities_of(outputs), offline_steps(reference, stream), atol=1e-5, rtol=0)
    after = httpx.get(f"{server.url}/metrics").text
    calls = metric(after, "lstmkit_step_batch_size_count") - metric(before, "lstmkit_step_batch_size_count")
    single = (metric(after, 'lstmkit_step_batch_size_bucket{le="1.0"}')
              - metric(before, 'lstmkit_step_batch_size_bucket{le="1.0"}'))
    assert metric(after, "lstmkit_step_batch_size_sum") - metric(before, "lstmkit_step_batch_size_sum") == 24 * 6
    assert single < calls < 24 * 6, f"{calls} step calls for {24 * 6} session steps, {single} of one session"
    assert metric(after, "lstmkit_sessions_active") == 0


def test_metrics_text(client):
    client.get("/healthz")
    text = client.get("/metrics").text
    for name in ["lstmkit_requests_total", "lstmkit_request_duration_seconds_bucket", "lstmkit_sessions_active",
                 "lstmkit_predict_batch_size_bucket", "lstmkit_step_batch_size_bucket",
                 "lstmkit_model_call_duration_seconds_bucket"]:
        assert f"\n{name}" in text or text.startswith(name), name
    assert metric(text, 'lstmkit_requests_total{endpoint="/healthz",method="GET",status="200"}') >= 1


# ---- limits and models that cannot stream: servers of their own ----


def test_session_ttl_and_max_sessions(model_dir):
    options = ServeOptions(session_ttl=0.5, max_sessions=2, batch_wait_ms=1)
    with LiveServer(create_app(load_backend(model_dir), options)) as live, httpx.Client(base_url=live.url) as client:
        first = client.post("/v1/sessions").json()["id"]
        second = client.post("/v1/sessions").json()["id"]
        refused = client.post("/v1/sessions")
        assert refused.status_code == 429
        assert refused.json()["error"].startswith("too many sessions: 2 are open (--max-sessions 2)")
        assert client.post(f"/v1/sessions/{second}/step", json={"inputs": [GOOD_STEP]}).status_code == 200
        time.sleep(1.2)  # both idle past the TTL
        expired = client.post(f"/v1/sessions/{first}/step", json={"inputs": [GOOD_STEP]})
        assert expired.status_code == 404
        assert expired.json()["error"] == (f"session {first}: expired (idle for more than 0.5 s, --session-ttl); "
                                           "open a new one")
        assert client.post("/v1/sessions").status_code == 201  # the expired ones freed their places
        assert metric(client.get("/metrics").text, "lstmkit_sessions_active") == 1


@pytest.mark.parametrize("options, reason", [
    ({"bidirectional": True}, "it is bidirectional"),
    ({"readout": "mean"}, 'its readout is "mean"'),
])
def test_sessions_are_refused_for_models_that_cannot_stream(tmp_path, options, reason):
    folder = make_folder(tmp_path / "model", **options)
    with LiveServer(create_app(load_backend(folder))) as live, httpx.Client(base_url=live.url) as client:
        assert client.get("/healthz").json()["streaming"] is False
        response = client.post("/v1/sessions")
        assert response.status_code == 409
        assert response.json()["error"].startswith(f"sessions are not supported for this model: {reason}")
        assert client.post("/v1/predict", json={"inputs": [[GOOD_STEP] * 3]}).status_code == 200
