"""What the ONNX exporter still refuses: only what it cannot write, each named in the error, nothing written."""

import dataclasses

import numpy as np
import pytest
import torch

from lstmkit.artifacts.model_folder import load_model, save_model
from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.export import ExportError, export_onnx, lstm_graph
from lstmkit.models import InputSpec, build_model
from lstmkit.nn import ACTIVATIONS, LSTM

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

SPEC = InputSpec(input_size=3, num_outputs=2, sequence_length=6)


def folder(tmp_path, **options):
    torch.manual_seed(0)
    config = Config(model=ModelConfig(hidden_size=4, **options))
    module = build_model(config.model, SPEC).eval()
    x = np.random.default_rng(0).normal(size=(8, 6, 3)).astype(np.float32)
    return save_model(tmp_path / "model", module, config, SPEC, ["a", "b"], Standardizer().fit(x))


def test_an_activation_onnx_has_no_op_for_is_refused(tmp_path, monkeypatch):
    """A user may register an activation of their own in lstmkit.nn.ACTIVATIONS; ONNX has no op for it."""
    monkeypatch.setitem(ACTIVATIONS, "swish", lambda x: x * torch.sigmoid(x))
    model = load_model(folder(tmp_path))
    lstm = model.module.lstm
    model.module.lstm = LSTM.from_options(dataclasses.replace(lstm.options, hidden_activation="swish", impl="reference"))
    with pytest.raises(ExportError, match=r"cannot export to ONNX: unsupported hidden_activation = 'swish' \(the ONNX "
                                          r"exporter maps sigmoid, hard_sigmoid, tanh, relu, elu, softsign\)"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_variant_the_writer_was_not_written_for_is_refused_with_its_parameters(tmp_path, monkeypatch):
    """A variant added to the engine after the writer (here: the writer made to forget peepholes) is refused
    by what the LSTM's structure says, the variant and each of its parameters by name."""
    monkeypatch.setattr(lstm_graph, "_EXPORTED_VARIANTS", lstm_graph._EXPORTED_VARIANTS - {"peephole"})
    monkeypatch.setattr(lstm_graph, "_EXPORTED_PARAMETERS", lstm_graph._EXPORTED_PARAMETERS - {"weight_peephole"})
    model = load_model(folder(tmp_path, peephole=True, num_layers=2))
    with pytest.raises(ExportError, match=r"unsupported LSTM variant peephole=True; LSTM parameter weight_peephole_l0; "
                                          r"LSTM parameter weight_peephole_l1$"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_every_option_of_the_engine_is_known_to_the_writer():
    """Adding a variant or a parameter kind to lstmkit.nn makes the writer refuse it until it learns it: this
    test names what to teach it."""
    from lstmkit.nn.layer import LayerWeights
    from lstmkit.nn.variants import Variants

    assert {f.name for f in dataclasses.fields(Variants)} == lstm_graph._EXPORTED_VARIANTS
    assert set(LayerWeights._fields) == lstm_graph._EXPORTED_PARAMETERS
