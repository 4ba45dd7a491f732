"""Step graphs of variant models: the state layout ``lstmkit serve`` feeds back (h is proj_size wide)."""

import numpy as np
import onnx
import pytest
import torch

from lstmkit.artifacts.model_folder import load_model, save_model
from lstmkit.cli import main
from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.export import read_onnx_meta
from lstmkit.models import InputSpec, build_model
from lstmkit.serve.backends import OnnxBackend, TorchBackend

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

SPEC = InputSpec(input_size=3, num_outputs=4, sequence_length=8)
OPTIONS = {"proj_size": 2, "num_layers": 2, "layer_norm": True, "peephole": True, "zoneout": [0.1, 0.2],
           "cell_clip": 0.8, "residual": True}


def folder(tmp_path):
    torch.manual_seed(0)
    config = Config(model=ModelConfig(hidden_size=5, **OPTIONS))
    module = build_model(config.model, SPEC).eval()
    with torch.no_grad():
        for name, parameter in module.lstm.named_parameters():
            if name.startswith(("weight_peephole", "ln_")):
                parameter.add_(0.5 * torch.randn_like(parameter))
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(8, 8, 3)).astype(np.float32)
    return save_model(tmp_path / "model", module, config, SPEC, list("abcd"), Standardizer().fit(x))


def test_cli_exports_a_projected_variant_model_with_its_step_graph(tmp_path, capsys):
    model_dir = folder(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", str(model_dir), "--out", str(out)]) == 0
    assert f"wrote {tmp_path / 'm.step.onnx'}" in capsys.readouterr().out
    meta = read_onnx_meta(out)
    assert (meta["hidden_size"], meta["output_size"], meta["num_layers"]) == (5, 2, 2)
    step_inputs = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
                   for i in onnx.load(str(tmp_path / "m.step.onnx")).graph.input}
    assert step_inputs["h0"] == [2, "N", 2] and step_inputs["c0"] == [2, "N", 5]


def test_serve_streams_a_projected_variant_model_in_onnx_runtime_as_in_pytorch(tmp_path):
    """The ONNX backend holds h (num_layers, N, proj_size) and c (num_layers, N, hidden_size), as the step
    graph takes and returns them, and continues streams as the PyTorch backend does."""
    model_dir = folder(tmp_path)
    assert main(["export", str(model_dir), "--out", str(tmp_path / "m.onnx")]) == 0
    onnx_backend = OnnxBackend(tmp_path / "m.onnx")
    torch_backend = TorchBackend(load_model(model_dir), source="test")
    assert onnx_backend.info.state_sizes == torch_backend.info.state_sizes == (2, 5)

    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(3, 7, 3)).astype(np.float32)
    states = {}
    for name, backend in (("onnx", onnx_backend), ("torch", torch_backend)):
        h = np.zeros((2, 3, 2), np.float32)
        c = np.zeros((2, 3, 5), np.float32)
        outputs = []
        for start, stop in [(0, 2), (2, 3), (3, 7)]:
            probabilities, h, c = backend.steps(np.ascontiguousarray(x[:, start:stop]),
                                                np.full(3, stop - start), h, c)
            outputs.append(np.asarray(probabilities))
        states[name] = (np.concatenate(outputs, axis=1), np.asarray(h), np.asarray(c))
    for got, want in zip(states["onnx"], states["torch"]):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
