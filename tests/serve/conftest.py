"""Fixtures: a real uvicorn server on 127.0.0.1 (a free port), in a thread, once per backend."""

import httpx
import pytest

from lstmkit.export import export_onnx
from lstmkit.artifacts.model_folder import load_model
from lstmkit.serve import create_app, load_backend
from serve_helpers import OPTIONS, LiveServer, make_folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="session")
def reference(model_dir):
    """The model in PyTorch, for offline answers."""
    return load_model(model_dir)


@pytest.fixture(scope="session")
def onnx_file(model_dir, tmp_path_factory):
    return export_onnx(model_dir, tmp_path_factory.mktemp("onnx") / "model.onnx").path


@pytest.fixture(scope="session", params=["torch", "onnx"])
def server(request, model_dir, onnx_file):
    """A server of the streaming-capable test model, once per backend."""
    backend = load_backend(model_dir if request.param == "torch" else onnx_file)
    assert backend.name == request.param
    with LiveServer(create_app(backend, OPTIONS)) as live:
        live.backend = request.param
        yield live


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
