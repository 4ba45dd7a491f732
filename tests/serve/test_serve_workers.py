"""`lstmkit serve --workers 2`: two real server processes on one port of 127.0.0.1 answering predict like one,
HTTP sessions refused with the reason, /v1/stream working, a killed worker replaced, a model that does not load
stopping everything with its error, and SIGTERM stopping all of them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import psutil
import pytest
from serve_helpers import FEATURES, LABELS
from test_serve_cli import free_port

from lstmkit.cli import main
from lstmkit.serve import load_backend
from lstmkit.serve.client import StreamClient

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs os.fork")


def _start(model, port, *flags):
    return subprocess.Popen(
        [sys.executable, "-m", "lstmkit", "serve", str(model), "--port", str(port), "--workers", "2", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _workers(process, count=2, seconds=90):
    """The worker pids of ``process`` once ``count`` of them answer /healthz (each connection may reach any)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        children = psutil.Process(process.pid).children()
        if len(children) == count:
            return sorted(child.pid for child in children)
        time.sleep(0.2)
    raise AssertionError("the workers did not start")


def _wait_healthy(port, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.2)


def _read_response(conn):
    """The head and body of one HTTP response with a Content-Length, read from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


def _probabilities(prediction):
    return np.array([prediction["probabilities"][label] for label in LABELS])


def _serving_worker(conn, workers):
    """The worker holding the server end of the open connection ``conn``."""
    client_port = conn.getsockname()[1]
    for pid in workers:
        if any(c.raddr and c.raddr.port == client_port for c in psutil.Process(pid).net_connections(kind="tcp")):
            return pid
    return None


def _stop(process):
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    return output


def test_two_workers_answer_like_one_refuse_http_sessions_stream_and_replace_a_killed_worker(model_dir):
    port = free_port()
    process = _start(model_dir, port)
    try:
        first = _workers(process)
        _wait_healthy(port)
        x = np.random.default_rng(0).normal(size=(1, 5, FEATURES)).astype(np.float32)
        expected = load_backend(model_dir).predict(x, np.array([5]))
        body = json.dumps({"inputs": x.tolist()}).encode()
        answered_by = set()
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
                head, answer = _read_response(conn)
                assert head.startswith(b"HTTP/1.1 200 "), head
                np.testing.assert_allclose(_probabilities(json.loads(answer)["predictions"][0]), expected[0], atol=1e-5)
                answered_by.add(_serving_worker(conn, first))
        assert answered_by == set(first), answered_by  # both workers served

        opened = httpx.post(f"http://127.0.0.1:{port}/v1/sessions")
        assert opened.status_code == 409
        assert "HTTP sessions need one server process, and this server runs 2 (--workers)" in opened.json()["error"]
        assert "/v1/stream" in opened.json()["error"]

        with StreamClient(f"ws://127.0.0.1:{port}/v1/stream") as stream:  # a WebSocket stays with one worker
            session = stream.open()
            outputs = [stream.step(session, [row]).probabilities for row in x[0]]
        np.testing.assert_allclose(np.asarray(outputs[-1]).reshape(-1), expected[0], atol=1e-5)

        os.kill(first[0], signal.SIGKILL)  # a worker dies: another takes its place
        deadline = time.monotonic() + 90
        while sorted(child.pid for child in psutil.Process(process.pid).children()) in ([first[1]], first):
            assert time.monotonic() < deadline and process.poll() is None, "the killed worker was not replaced"
            time.sleep(0.2)
        replaced = _workers(process)
        assert first[0] not in replaced and first[1] in replaced
        _wait_healthy(port)
        for _ in range(10):
            assert httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"inputs": x.tolist()}).status_code == 200
    finally:
        if process.poll() is None:
            output = _stop(process)
    assert f"Uvicorn running on http://127.0.0.1:{port} with 2 worker processes" in output
    assert "died (status -9); starting another" in output
    assert not psutil.pid_exists(replaced[0]) or psutil.Process(replaced[0]).status() == psutil.STATUS_ZOMBIE


def test_a_model_that_does_not_load_stops_every_worker_with_its_error(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    process = _start(tmp_path / "broken.onnx", free_port())
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2, output
    assert "lstmkit: error: " in output and "ended before serving (status 2); stopping" in output


def test_workers_flag_errors(capsys, model_dir):
    assert main(["serve", str(model_dir), "--workers", "0"]) == 2
    assert "serve --workers: expected a positive number, got 0" in capsys.readouterr().err
    too_many = 4 * (os.cpu_count() or 1) + 1
    assert main(["serve", str(model_dir), "--workers", str(too_many)]) == 2
    assert f"serve --workers: expected 1 to {too_many - 1} (4 per core of this machine), got {too_many}" in \
        capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_end_when_the_parent_is_killed(model_dir):
    process = _start(model_dir, free_port())
    workers = _workers(process)
    process.kill()  # SIGKILL: the parent forwards nothing
    process.communicate(timeout=30)
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    assert not alive, f"orphaned workers still running: {alive}"


def test_more_than_one_worker_needs_fork(monkeypatch):
    from lstmkit.errors import LstmkitError
    from lstmkit.serve.workers import supervise

    monkeypatch.delattr(os, "fork")
    with pytest.raises(LstmkitError, match=r"serve --workers: more than one worker needs os.fork, which this "
                                           r"platform lacks; use --workers 1"):
        supervise(2, lambda ready: None)



def _can_unshare_pid():
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _can_unshare_pid(),
                    reason="needs unshare --pid (Linux, root)")
def test_workers_serve_when_the_parent_is_pid_1(model_dir):
    # A container's entrypoint is PID 1: a worker must not take getppid() == 1 for its parent's death
    port = free_port()
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child=SIGTERM", sys.executable, "-m", "lstmkit", "serve",
         str(model_dir), "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not psutil.Process(process.pid).children():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.1)
        parent = psutil.Process(process.pid).children()[0]  # PID 1 of the new namespace
        _wait_healthy(port)
        assert len(parent.children()) == 2 and process.poll() is None
        parent.terminate()  # unshare itself ignores SIGTERM while it waits for its child
        out = process.communicate(timeout=60)[0]
    finally:
        process.kill()  # unshare --kill-child then ends the rest
    assert process.returncode == 0, out
