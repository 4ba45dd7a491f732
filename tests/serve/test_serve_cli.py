"""`lstmkit serve` from the command line: a real process on 127.0.0.1, then SIGTERM."""

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from serve_helpers import FEATURES
from lstmkit.cli import main
from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.serve import ServeOptions


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


def test_serve_refuses_an_onnx_step_file_outside_its_folder(onnx_file, tmp_path):
    import onnx

    from lstmkit.export import META_KEY
    from lstmkit.serve import load_backend

    proto = onnx.load(str(onnx_file))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props[META_KEY])
    meta["step_file"] = "../../etc/passwd"
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {META_KEY: json.dumps(meta)})
    evil = tmp_path / "evil.onnx"
    onnx.save(proto, str(evil))
    with pytest.raises(LstmkitError, match=r"its step_file '../../etc/passwd' is not a plain file name next to it"):
        load_backend(evil)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_serve_refuses_a_non_loopback_address_without_a_key(capsys, model_dir, host, monkeypatch):
    monkeypatch.delenv("LSTMKIT_API_KEY", raising=False)
    assert main(["serve", str(model_dir), "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lstmkit: error: serve --host {host}: refusing to listen on a non-loopback address "
                          "without an API key; set LSTMKIT_API_KEY (or pass --api-key KEY), or pass --insecure")
    assert len(err.strip().splitlines()) == 1


def test_loopback_addresses_need_no_key():
    for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost"]:
        ServeOptions().check_bind(host)
    ServeOptions(insecure=True).check_bind("0.0.0.0")
    ServeOptions(api_key="k" * 16).check_bind("0.0.0.0")


def test_serve_option_errors(capsys, model_dir):
    assert main(["serve", str(model_dir), "--api-key", "short"]) == 2
    assert ("serve --api-key: expected at least 16 printable ASCII characters without spaces, got 5 characters"
            in capsys.readouterr().err)
    for flag in ["--rate-limit", "--request-timeout", "--max-concurrency", "--rate-burst"]:
        assert main(["serve", str(model_dir), flag, "-1"]) == 2
        assert f"serve {flag}: expected a positive number, got -1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"serve --max-concurrency: expected a positive number, got 0"):
        ServeOptions(max_concurrency=0)
    assert "secret" not in repr(ServeOptions(api_key="secret" * 4))  # never in a log line


def test_the_api_key_comes_from_the_environment_unless_given(model_dir, monkeypatch):
    import lstmkit.serve

    seen = {}
    monkeypatch.setattr(lstmkit.serve, "serve", lambda model, **kwargs: seen.update(kwargs) or 0)
    monkeypatch.setenv("LSTMKIT_API_KEY", "e" * 20)
    assert main(["serve", str(model_dir), "--host", "0.0.0.0", "--rate-limit", "5", "--access-log"]) == 0
    options = seen["options"]
    assert options.api_key == "e" * 20 and options.rate_limit == 5 and options.access_log is True
    assert main(["serve", str(model_dir), "--api-key", "f" * 16]) == 0
    assert seen["options"].api_key == "f" * 16
