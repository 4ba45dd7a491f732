"""ONNX export: parity with PyTorch in ONNX Runtime, padding that never leaks, streaming, refusals, CLI."""

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from lstmkit.export import lstm_graph as export_module
from lstmkit.cli import main
from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.export import ExportError, export_onnx, read_onnx_meta, step_path_for
from lstmkit.artifacts.model_folder import load_model, save_model
from lstmkit.models import InputSpec, build_model

SPEC = InputSpec(input_size=5, num_outputs=4, sequence_length=9)
LABELS = ["a", "b", "c", "d"]
TOLERANCE = 1e-4


def make_folder(path, seed=0, spec=SPEC, **model_options):
    torch.manual_seed(seed)
    config = Config(model=ModelConfig(hidden_size=8, **model_options))
    module = build_model(config.model, spec).eval()
    x = np.random.default_rng(seed).normal(3.0, 2.0, size=(16, 9, spec.input_size)).astype(np.float32)
    return save_model(path, module, config, spec, LABELS, Standardizer().fit(x))


def raw_inputs(n, length, seed=1):
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(n, length, SPEC.input_size)).astype(np.float32)


def torch_probabilities(model, raw):
    """What PyTorch gives for raw inputs of any length, one model call."""
    with torch.no_grad():
        x = torch.from_numpy(model.standardizer.transform(raw))
        return torch.softmax(model.module(x), dim=-1).numpy()


def run(path, feeds, outputs=("probabilities",)):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(list(outputs), feeds)


CASES = {
    "vanilla": {},
    "bidirectional": {"bidirectional": True},
    "two_layers": {"num_layers": 2},
    "bidirectional_two_layers_mean": {"bidirectional": True, "num_layers": 2, "readout": "mean"},
    "relu": {"cell_activation": "relu", "hidden_activation": "relu"},
    "hard_sigmoid_elu_softsign": {"gate_activation": "hard_sigmoid", "cell_activation": "elu",
                                  "hidden_activation": "softsign"},
    "conv1d": {"conv": "conv1d", "conv_channels": [6, 5], "pool": 2},
    "conv2d_max": {"conv": "conv2d", "conv_channels": [4], "pool": 2, "readout": "max"},
    "readout_max_head_hidden": {"readout": "max", "head_hidden": 7, "head_dropout": 0.3},
}


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
def test_export_matches_pytorch_on_fixed_and_variable_lengths(tmp_path, options):
    folder = make_folder(tmp_path / "model", **options)
    result = export_onnx(folder, tmp_path / "model.onnx")
    assert result.path.is_file() and result.max_abs_diff <= TOLERANCE
    assert set(result.checks) >= {"fixed_length", "variable_length"}

    graph = onnx.load(str(result.path)).graph
    lstm_nodes = [node for node in graph.node if node.op_type == "LSTM"]
    assert len(lstm_nodes) == options.get("num_layers", 1)
    assert [i.name for i in graph.input] == ["input", "lengths"]
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim[:2]] == ["N", "L"]

    # Independently of the exporter's own check: another batch size and length than it verified with,
    # and garbage past each length, against each sequence run alone in PyTorch.
    model = load_model(folder)
    length = 13
    x = raw_inputs(5, length)
    lengths = np.array([13, 4, 9, 4, 11])
    padded = x.copy()
    for i, steps in enumerate(lengths):
        padded[i, steps:] = 1e4
    (probabilities,) = run(result.path, {"input": padded, "lengths": lengths})
    alone = np.zeros_like(probabilities)
    for steps in np.unique(lengths):  # equal lengths together: no padding, so each as if alone
        alone[lengths == steps] = torch_probabilities(model, x[lengths == steps, :steps])
    np.testing.assert_allclose(probabilities, alone, atol=TOLERANCE, rtol=0)
    (full,) = run(result.path, {"input": x, "lengths": np.full(5, length)})
    np.testing.assert_allclose(full, torch_probabilities(model, x), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "cell_activation": "relu", "hidden_activation": "relu"}])
def test_step_graph_continues_streams_like_the_whole_sequence(tmp_path, options):
    folder = make_folder(tmp_path / "model", **options)
    result = export_onnx(folder, tmp_path / "stream.onnx")
    assert result.step_path == step_path_for(tmp_path / "stream.onnx") == tmp_path / "stream.step.onnx"
    assert read_onnx_meta(result.path)["step_file"] == "stream.step.onnx"
    assert read_onnx_meta(result.step_path)["graph"] == "step"
    assert any(node.op_type == "LSTM" for node in onnx.load(str(result.step_path)).graph.node)

    model = load_model(folder)
    x = raw_inputs(3, 7)
    with torch.no_grad():
        expected = torch.softmax(model.module.forward_steps(torch.from_numpy(model.standardizer.transform(x))), -1)
    layers = options.get("num_layers", 1)
    h = np.zeros((layers, 3, 8), np.float32)
    c = np.zeros((layers, 3, 8), np.float32)
    session = ort.InferenceSession(str(result.step_path), providers=["CPUExecutionProvider"])
    for start, stop in [(0, 1), (1, 4), (4, 7)]:
        probabilities, h, c = session.run(["probabilities", "h_n", "c_n"], {
            "input": x[:, start:stop], "lengths": np.full(3, stop - start), "h0": h, "c0": c})
        np.testing.assert_allclose(probabilities, expected[:, start:stop].numpy(), atol=1e-5, rtol=0)


def test_models_that_cannot_stream_get_no_step_graph(tmp_path):
    folder = make_folder(tmp_path / "model", bidirectional=True)
    result = export_onnx(folder, tmp_path / "bi.onnx")
    assert result.step_path is None and not (tmp_path / "bi.step.onnx").exists()
    assert "bidirectional" in result.streaming_unsupported
    assert read_onnx_meta(result.path)["step_file"] is None


def test_no_step_option_and_metadata(tmp_path):
    folder = make_folder(tmp_path / "model")
    result = export_onnx(folder, tmp_path / "only.onnx", step=False)
    assert result.step_path is None and not (tmp_path / "only.step.onnx").exists()
    meta = read_onnx_meta(result.path)
    assert meta["label_names"] == LABELS and meta["input_size"] == 5 and meta["standardizer_in_graph"]
    assert meta["step_file"] is None


def test_an_option_the_exporter_does_not_know_is_refused(tmp_path):
    @dataclasses.dataclass
    class FutureModelConfig(ModelConfig):
        shiny_new_option: bool = False

    model = load_model(make_folder(tmp_path / "model"))
    model.config.model = FutureModelConfig(**{**dataclasses.asdict(model.config.model), "shiny_new_option": True})
    with pytest.raises(ExportError, match=r"\[model\] shiny_new_option = True \(an option the ONNX exporter does not know\)"):
        export_onnx(model, tmp_path / "x.onnx")


def test_an_unknown_module_is_refused(tmp_path):
    model = load_model(make_folder(tmp_path / "model"))
    model.module.head = nn.Sequential(nn.GELU(), model.module.head[0])
    with pytest.raises(ExportError, match=r"module head\.0 of type GELU"):
        export_onnx(model, tmp_path / "x.onnx")


def test_a_graph_that_disagrees_with_pytorch_is_not_written(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "model")
    # A classic exporter bug: PyTorch's gate order (i, f, g, o) where ONNX wants (i, o, f, c).
    monkeypatch.setattr(export_module, "_ONNX_GATE_ORDER", (0, 1, 2, 3))
    out = tmp_path / "wrong.onnx"
    with pytest.raises(ExportError, match=r"ONNX Runtime and PyTorch disagree: max abs difference \d\.\d+(e-0\d)? "
                                          r"in the \w+ check exceeds the tolerance 0\.0001 .*wrong\.onnx was not written"):
        export_onnx(folder, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no file, no temporary file


def test_tolerance_is_enforced(tmp_path):
    folder = make_folder(tmp_path / "model")
    with pytest.raises(ExportError, match=r"exceeds the tolerance 0 "):
        export_onnx(folder, tmp_path / "strict.onnx", tolerance=0.0, samples=raw_inputs(4, 9) * 1e3)


def test_cli_export(tmp_path, capsys):
    folder = make_folder(tmp_path / "model")
    np.save(tmp_path / "samples.npy", raw_inputs(6, 9))
    assert main(["export", str(folder), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                 "--samples", str(tmp_path / "samples.npy")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'm.onnx'}" in out and f"wrote {tmp_path / 'm.step.onnx'}" in out
    assert "verified in ONNX Runtime against PyTorch: max abs difference" in out
    assert main(["export", str(tmp_path / "nosuch"), "--out", str(tmp_path / "n.onnx")]) == 2
    assert "lstmkit: error: model folder" in capsys.readouterr().err


def test_cli_export_refuses_a_tampered_folder_naming_the_file(tmp_path, capsys):
    folder = make_folder(tmp_path / "model")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])  # truncated
    assert main(["export", str(folder), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "model.safetensors does not match manifest.json" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
