"""LSTM-FCN and MLSTM-FCN (``[model] architecture``): the two branches as the papers describe them, padding
that changes nothing, the errors a config can meet, a model folder round trip, and real learning on a UCR set."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.config import ModelConfig, load_config
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models import InputSpec, build_model
from lstmkit.models.lstm_fcn import LSTMFCN, SqueezeExcite

CONFIGS = Path(__file__).parent.parent.parent / "configs"
SPEC = InputSpec(input_size=3, num_outputs=4, sequence_length=20)
SMALL = {"hidden_size": 6, "fcn_filters": [8, 16, 8], "fcn_kernels": [5, 3, 3]}


@pytest.mark.parametrize("architecture", ["lstm-fcn", "mlstm-fcn"])
def test_the_two_branches_as_in_the_papers(architecture):
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture=architecture, hidden_size=8), SPEC)
    assert isinstance(model, LSTMFCN)
    # the LSTM branch reads the 3 variables as 3 steps of 20 values (the dimension shuffle)
    assert model.lstm.input_size == 20 and model.lstm.hidden_size == 8
    convs = list(model.fcn.convs)
    assert [c.out_channels for c in convs] == [128, 256, 128] and [c.kernel_size[0] for c in convs] == [8, 5, 3]
    excites = [isinstance(e, SqueezeExcite) for e in model.fcn.excites]
    assert excites == ([True, True, False] if architecture == "mlstm-fcn" else [False, False, False])
    assert model.shuffle_dropout.p == 0.8
    assert model.head[-1].in_features == 8 + 128
    logits = model(torch.randn(5, 20, 3))
    assert logits.shape == (5, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_the_lstm_branch_sees_each_variables_whole_series_at_its_steps():
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="lstm-fcn", **SMALL), SPEC).eval()
    x = torch.randn(2, 20, 3)
    _, (h_n, _) = model.lstm(x.transpose(1, 2))  # variables as steps
    features = model.fcn(x)
    torch.testing.assert_close(model(x), model.head(torch.cat([h_n[-1], features], dim=-1)))


def test_same_padding_keeps_the_length_for_even_kernels():
    model = build_model(ModelConfig(architecture="lstm-fcn", **{**SMALL, "fcn_kernels": [8, 4, 2]}), SPEC)
    y = torch.randn(2, 3, 20)
    for conv in model.fcn.convs:
        k = conv.kernel_size[0]
        y = conv(torch.nn.functional.pad(y, ((k - 1) // 2, k // 2)))
        assert y.shape[-1] == 20


def test_padding_of_variable_length_series_changes_nothing():
    torch.manual_seed(0)
    config = ModelConfig(architecture="mlstm-fcn", shuffle_length=12, **SMALL)
    model = build_model(config, InputSpec(input_size=3, num_outputs=4)).eval()
    x = torch.randn(3, 10, 3)
    lengths = torch.tensor([10, 4, 7])
    batch = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = x[i : i + 1, :n]
        torch.testing.assert_close(batch[i : i + 1], model(alone, lengths[i : i + 1]))
        padded = torch.cat([alone, torch.full((1, 5, 3), 9.0)], dim=1)  # garbage past the end
        torch.testing.assert_close(batch[i : i + 1], model(padded, torch.tensor([n])))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"config \[model\] shuffle_length: the \"lstm-fcn\" model reads each "
                                          r"variable's whole series as one LSTM step.*got 0"):
        build_model(ModelConfig(architecture="lstm-fcn"), InputSpec(input_size=3, num_outputs=2))
    with pytest.raises(ConfigError, match=r"config \[model\] fcn_kernels: expected one kernel size per "
                                          r"fcn_filters entry \(3\), got 2"):
        build_model(ModelConfig(architecture="lstm-fcn", fcn_kernels=[8, 5]), SPEC)
    with pytest.raises(ConfigError, match=r"config \[model\] fcn_filters\[1\]: expected an integer in 1..65536, got 0"):
        build_model(ModelConfig(architecture="mlstm-fcn", fcn_filters=[4, 0, 4]), SPEC)
    with pytest.raises(ConfigError, match=r"config \[model\] architecture: expected one of \"lstm\", \"lstm-fcn\", "
                                          r"\"mlstm-fcn\", got \"fcn\""):
        load_config(None, ["model.architecture=fcn"])
    with pytest.raises(ShapeError, match=r"LSTMFCN: expected input of shape \(N, L, 3\), got \(2, 20, 4\)"):
        build_model(ModelConfig(architecture="lstm-fcn", **SMALL), SPEC)(torch.randn(2, 20, 4))


def test_it_says_why_it_cannot_stream():
    model = build_model(ModelConfig(architecture="lstm-fcn", **SMALL), SPEC)
    reason = model.streaming_unsupported_reason()
    assert "dimension shuffle" in reason and "look ahead" in reason
    with pytest.raises(ValueError, match="LSTMFCN.step: this model cannot stream: it is an LSTM-FCN"):
        model.step(torch.randn(1, 3))


@pytest.fixture(scope="module")
def italy_power_run(tmp_path_factory):
    pytest.importorskip("aeon")
    from lstmkit.cli import main

    out = tmp_path_factory.mktemp("runs") / "italy"
    args = ["train", str(CONFIGS / "italy_power_demand_lstm_fcn.toml"), "--out", str(out),
            "--set", "train.epochs=15", "--set", "model.fcn_filters=[16,32,16]", "--set", "model.hidden_size=8",
            "--set", "train.report=false", "--set", "train.tensorboard=false", "--set", "train.num_threads=1"]
    assert main(args) == 0
    return out


def test_a_tiny_lstm_fcn_learns_a_ucr_set(italy_power_run):
    """ItalyPowerDemand (67 training series of 24 hours, 2 classes, 1029 test series): chance is 0.5."""
    metrics = json.loads((italy_power_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.85, metrics


def test_the_model_folder_loads_and_predicts_as_trained(italy_power_run):
    import lstmkit
    from lstmkit.data import load_source

    model = lstmkit.load(italy_power_run / "model")
    test = load_source("italy-power-demand").test
    accuracy = float((model.predict(test.x) == test.y).mean())
    assert accuracy == pytest.approx(json.loads((italy_power_run / "metrics.json").read_text())["test_accuracy"])
    assert isinstance(model.module, LSTMFCN) and np.isfinite(model.predict_proba(test.x[:2])).all()


def test_the_forecaster_refuses_the_fcn_architectures():
    with pytest.raises(ConfigError, match=r'config \[model\] architecture: the forecaster is the "lstm" architecture'
                                          r'.*got "lstm-fcn", which is for classifiers and regressors'):
        build_model(ModelConfig(task="forecaster", architecture="lstm-fcn"), SPEC)


def test_the_trained_lstm_fcn_exports_and_serves_as_the_model_folder_answers(italy_power_run, tmp_path):
    """The ONNX graph of the trained ItalyPowerDemand model, through the ONNX serving backend, against the
    model folder through the torch serving backend, on the 1,029 real test series."""
    from lstmkit.data import load_source
    from lstmkit.export import export_onnx
    from lstmkit.serve import load_backend

    result = export_onnx(italy_power_run, tmp_path / "fcn.onnx")  # verified in ONNX Runtime before writing
    assert max(result.checks.values()) < 1e-4, result.checks
    test = load_source("italy-power-demand").test
    x = test.x.astype(np.float32)
    lengths = np.full(len(x), x.shape[1])
    onnx_backend, torch_backend = load_backend(tmp_path / "fcn.onnx"), load_backend(italy_power_run / "model")
    assert onnx_backend.info.streaming_unsupported and "dimension shuffle" in onnx_backend.info.streaming_unsupported
    np.testing.assert_allclose(onnx_backend.predict(x, lengths), torch_backend.predict(x, lengths), atol=1e-4)


@pytest.mark.parametrize("architecture, options", [
    ("mlstm-fcn", {"bidirectional": True, "num_layers": 2, "merge_mode": "sum", "head_hidden": 5}),
    ("lstm-fcn", {"layer_norm": True, "peephole": True, "shuffle_length": 12, "proj_size": 3}),
], ids=["mlstm-fcn-bidirectional", "lstm-fcn-variants-cut-to-12"])
def test_every_kind_of_lstm_fcn_exports_with_variable_lengths(architecture, options, tmp_path):
    """Untrained models with batch-norm statistics and SE weights away from their defaults: the export verifies
    a padded variable-length batch against each series alone, and ONNX Runtime agrees here too."""
    import onnxruntime as ort

    from lstmkit.artifacts.model_folder import save_model
    from lstmkit.config import Config
    from lstmkit.data import Standardizer
    from lstmkit.export import export_onnx

    torch.manual_seed(1)
    config = Config(model=ModelConfig(architecture=architecture, **{**SMALL, **options}))
    module = build_model(config.model, SPEC).eval()
    with torch.no_grad():
        for norm in module.fcn.norms:
            norm.running_mean.normal_(0.0, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.normal_(1.0, 0.3)
            norm.bias.normal_(0.0, 0.3)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 20, 3)).astype(np.float32)
    folder = save_model(tmp_path / "model", module, config, SPEC, ["a", "b", "c", "d"], Standardizer().fit(x))
    result = export_onnx(folder, tmp_path / "fcn.onnx")
    assert max(result.checks.values()) < 1e-4 and "variable_length" in result.checks, result.checks
    lengths = np.array([20, 3, 11, 17, 1, 20, 8, 14])
    padded = np.where(np.arange(20)[None, :, None] < lengths[:, None, None], x, 1e3).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "fcn.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input": padded, "lengths": lengths.astype(np.int64)})[0]
    standardizer = Standardizer().fit(x)
    with torch.no_grad():
        alone = torch.cat([module(torch.from_numpy(((x[i:i + 1, :n] - standardizer.mean) / standardizer.std)
                                                   .astype(np.float32))) for i, n in enumerate(lengths)])
    np.testing.assert_allclose(logits, alone.numpy(), atol=1e-4)


def test_the_classifier_backend_names_what_it_was_given_instead():
    """(Before, an LSTM-FCN classifier was refused as "expected a classifier model, got task = 'classifier'".)"""
    from types import SimpleNamespace

    import torch

    from lstmkit.errors import LstmkitError
    from lstmkit.serve.backends import TorchBackend

    model = SimpleNamespace(config=SimpleNamespace(model=SimpleNamespace(task="regressor")), module=torch.nn.Linear(1, 1))
    with pytest.raises(LstmkitError, match=r"serve: expected a classifier model, got \[model\] task = 'regressor' "
                                           r"\(Linear\)"):
        TorchBackend(model)
