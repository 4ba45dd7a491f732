"""Secure by default, through a real server on 127.0.0.1: API key, rate limit, body size, back-pressure,
timeouts and the access log."""

import asyncio
import json
import logging
import re

import httpx
import pytest

from serve_helpers import FEATURES, LiveServer, SlowBackend
from lstmkit.serve import ServeOptions, create_app, load_backend
from lstmkit.serve.guard import RateLimiter

KEY = "test-key-0123456789abcdef"
ONE = {"inputs": [[[0.5] * FEATURES] * 3]}


@pytest.fixture(scope="module")
def backend(model_dir):
    return load_backend(model_dir)


def test_a_key_is_needed_for_everything_but_healthz(backend):
    with LiveServer(create_app(backend, ServeOptions(api_key=KEY))) as live, httpx.Client(base_url=live.url) as client:
        for method, path in [("GET", "/metrics"), ("POST", "/v1/predict"), ("POST", "/v1/sessions"),
                             ("GET", "/openapi.json"), ("GET", "/v1/sessions/abc")]:
            response = client.request(method, path, json=ONE)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json() == {
                "error": f"{method} {path}: expected the header 'Authorization: Bearer KEY', got none"}
        wrong = client.post("/v1/predict", json=ONE, headers={"Authorization": "Bearer " + "x" * len(KEY)})
        assert wrong.status_code == 401 and wrong.json() == {"error": "POST /v1/predict: invalid API key"}
        basic = client.get("/metrics", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert basic.status_code == 401 and basic.json()["error"].endswith("got another scheme")
        assert client.get("/healthz").status_code == 200
        good = client.post("/v1/predict", json=ONE, headers={"Authorization": f"Bearer {KEY}"})
        assert good.status_code == 200 and len(good.json()["predictions"]) == 1
        assert client.get("/metrics", headers={"Authorization": f"bearer {KEY}"}).status_code == 200


def test_a_burst_above_the_rate_limit_gets_429_with_retry_after(backend):
    # One token every 10 s: the 13 requests cannot earn a refill, however slowly a loaded machine sends them.
    options = ServeOptions(rate_limit=0.1, rate_burst=5)
    with LiveServer(create_app(backend, options)) as live, httpx.Client(base_url=live.url) as client:
        statuses = [client.post("/v1/predict", json=ONE).status_code for _ in range(12)]
        assert statuses == [200] * 5 + [429] * 7, statuses
        refused = client.post("/v1/predict", json=ONE)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert re.match(r"^too many requests: more than 0.1 per second from this client \(--rate-limit\); "
                        r"retry after \d+ s$", refused.json()["error"])
        assert client.get("/healthz").status_code == 200  # probes are never limited


def test_the_rate_limiter_refills_per_client_and_stays_bounded():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, max_clients=100, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # one token comes every 0.5 s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100


def test_an_oversized_body_gets_413_before_any_handler_reads_it(backend):
    options = ServeOptions(max_payload_bytes=1000)
    with LiveServer(create_app(backend, options)) as live, httpx.Client(base_url=live.url) as client:
        big = b"{" + b" " * 5000 + b"}"
        for path in ["/v1/predict", "/v1/sessions", "/v1/sessions/abc/step", "/nothing"]:
            response = client.post(path, content=big, headers={"content-type": "application/json"})
            assert response.status_code == 413, (path, response.text)
            assert response.json() == {
                "error": "request body: expected at most 1000 bytes (--max-payload-bytes), got 5002"}
        streamed = client.post("/v1/predict", content=iter([b" " * 600, b" " * 600]))  # chunked: no Content-Length
        assert streamed.status_code == 413 and streamed.json()["error"].endswith("got more")
        assert client.get("/v1/sessions").status_code == 405  # the server keeps serving
        assert client.post("/v1/predict", json=ONE).status_code == 200


def test_a_slow_request_gets_504(backend):
    options = ServeOptions(request_timeout=0.3)
    with LiveServer(create_app(SlowBackend(backend, 1.0), options)) as live, \
            httpx.Client(base_url=live.url, timeout=10) as client:
        response = client.post("/v1/predict", json=ONE)
        assert response.status_code == 504
        assert response.json() == {"error": "request timed out after 0.3 s (--request-timeout)"}
        assert client.get("/healthz").status_code == 200


def _rss_mib():
    psutil = pytest.importorskip("psutil")
    return psutil.Process().memory_info().rss / 2**20


async def _flood(url, requests, concurrency):
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        return await asyncio.gather(*[client.post("/v1/predict", json=ONE) for _ in range(requests)])


@pytest.mark.slow
@pytest.mark.parametrize("options, refusal", [
    (dict(max_batch=2, max_queue=4, max_concurrency=1000), r"^server busy: \d+ sequences are waiting \(--max-queue 4\); retry$"),
    (dict(max_batch=2, max_queue=4096, max_concurrency=8),
     r"^server busy: 8 requests in progress \(--max-concurrency 8\); retry$"),
])
def test_a_flood_beyond_the_queue_gets_503_while_the_server_stays_healthy(backend, options, refusal):
    with LiveServer(create_app(SlowBackend(backend, 0.02), ServeOptions(**options))) as live:
        asyncio.run(_flood(live.url, 50, 50))  # warm up: connections, buffers, allocator
        before = _rss_mib()
        responses = []
        for _ in range(2):
            responses += asyncio.run(_flood(live.url, 300, 100))
        after = _rss_mib()
        statuses = {}
        for response in responses:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        print(f"flood {options}: statuses {statuses}, RSS {before:.1f} MiB -> {after:.1f} MiB")
        assert set(statuses) == {200, 503}, statuses
        busy = [r for r in responses if r.status_code == 503]
        assert all(re.match(refusal, r.json()["error"]) for r in busy), busy[0].json()
        health = httpx.get(f"{live.url}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert httpx.post(f"{live.url}/v1/predict", json=ONE).status_code == 200
        assert after - before < 100, f"RSS grew from {before:.1f} to {after:.1f} MiB"


def test_the_access_log_is_one_json_line_per_request_without_payloads(backend, caplog):
    options = ServeOptions(api_key=KEY, access_log=True)
    secret_value = 1234.5678
    with caplog.at_level(logging.INFO, logger="lstmkit.serve.access"), \
            LiveServer(create_app(backend, options)) as live, httpx.Client(base_url=live.url) as client:
        body = {"inputs": [[[secret_value] * FEATURES]]}
        assert client.post("/v1/predict?token=hidden", json=body,
                           headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/metrics").status_code == 401
    records = [r.getMessage() for r in caplog.records if r.name == "lstmkit.serve.access"]
    lines = [json.loads(message) for message in records]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/v1/predict", 200), ("GET", "/metrics", 401)]
    assert all(set(line) == {"time", "method", "path", "status", "duration_ms", "client"} for line in lines)
    assert lines[0]["client"] == "127.0.0.1" and lines[0]["duration_ms"] >= 0
    text = "\n".join(records)
    assert str(secret_value) not in text and KEY not in text and "hidden" not in text
