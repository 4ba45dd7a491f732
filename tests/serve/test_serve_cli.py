"""`lstmkit serve` from the command line: a real process on 127.0.0.1, then SIGTERM."""

import signal
import socket
import subprocess
import sys
import time

import httpx

from serve_helpers import FEATURES
from lstmkit.cli import main


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_answers_then_stops_on_sigterm(model_dir):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lstmkit", "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
         "--backend", "onnx", "--max-batch", "8", "--session-ttl", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert health.json()["backend"] == "onnx" and health.json()["streaming"] is True
        response = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"inputs": [[[0.1] * FEATURES] * 3]})
        assert response.status_code == 200 and len(response.json()["predictions"]) == 1
        too_many = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"inputs": [[[0.1] * FEATURES]] * 9})
        assert too_many.status_code == 422 and "(--max-batch), got 9" in too_many.json()["error"]
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal once it has shut down
    assert "Application shutdown complete." in output
    assert f"Uvicorn running on http://127.0.0.1:{port}" in output


def test_serve_command_errors(capsys, model_dir, tmp_path):
    assert main(["serve", str(tmp_path / "nosuch")]) == 2
    assert "lstmkit: error: serve: model " in capsys.readouterr().err
    assert main(["serve", str(model_dir), "--max-batch", "0"]) == 2
    assert "lstmkit: error: serve --max-batch: expected a positive number, got 0" in capsys.readouterr().err
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    assert main(["serve", str(tmp_path / "x.onnx")]) == 2
    assert f"ONNX file {tmp_path / 'x.onnx'}: cannot be read" in capsys.readouterr().err
