import pytest
import torch

from lstmkit.config import ModelConfig
from lstmkit.errors import ConfigError, ShapeError
from lstmkit.models import InputSpec, SequenceClassifier, available_models, build_model

SPEC = InputSpec(input_size=8, num_outputs=10, sequence_length=8, image_shape=(8, 8))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"conv": "conv1d", "conv_channels": [6, 5], "pool": 2},
        {"conv": "conv2d", "conv_channels": [4], "pool": 2},
        {"bidirectional": True, "num_layers": 2, "dropout": 0.1, "readout": "mean"},
        {"proj_size": 4, "readout": "max", "head_hidden": 7, "head_dropout": 0.2},
        {"cell_activation": "relu", "hidden_activation": "relu"},
        {"peephole": True, "layer_norm": True, "cell_clip": 3.0},
        {"coupled_gates": True, "zoneout": [0.1, 0.2], "recurrent_dropout": 0.1, "weight_drop": 0.1},
        {"num_layers": 2, "residual": True},
        {"bidirectional": True, "merge_mode": "sum"},
        {"bidirectional": True, "merge_mode": "mean", "readout": "max"},
    ],
)
def test_shapes_and_backward(overrides):
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=12, **overrides), SPEC)
    logits = model(torch.randn(5, 8, 8))
    assert logits.shape == (5, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_last_readout_is_the_lstm_final_state_through_the_head():
    torch.manual_seed(0)
    model = SequenceClassifier(ModelConfig(hidden_size=6, bidirectional=True), SPEC).eval()
    x = torch.randn(3, 8, 8)
    _, (h_n, _) = model.lstm(x)
    expected = model.head(torch.cat([h_n[-2], h_n[-1]], dim=-1))
    torch.testing.assert_close(model(x), expected)


def test_lengths_ignore_padding():
    torch.manual_seed(0)
    model = SequenceClassifier(ModelConfig(hidden_size=6, readout="mean"), SPEC).eval()
    x = torch.randn(2, 8, 8)
    padded = x.clone()
    padded[1, 5:] = 100.0  # garbage past the end of sample 1
    lengths = torch.tensor([8, 5])
    torch.testing.assert_close(model(x, lengths), model(padded, lengths))
    torch.testing.assert_close(model(x[1:, :5]), model(padded, lengths)[1:])


def test_registry_and_errors():
    assert "classifier" in available_models()
    with pytest.raises(ConfigError, match=r"config \[model\] task: expected one of .*classifier.*, got 'nope'"):
        build_model(ModelConfig(task="nope"), SPEC)
    with pytest.raises(ConfigError, match=r"proj_size: expected less than hidden_size \(8\), got 8"):
        build_model(ModelConfig(hidden_size=8, proj_size=8), SPEC)
    with pytest.raises(ConfigError, match=r"leaves no columns of the 8-wide input"):
        build_model(ModelConfig(conv="conv2d", conv_channels=[2, 2, 2, 2], pool=2), SPEC)
    with pytest.raises(ConfigError, match=r"conv_channels: expected at least one channel count"):
        build_model(ModelConfig(conv="conv1d", conv_channels=[]), SPEC)
    model = build_model(ModelConfig(hidden_size=4), SPEC)
    with pytest.raises(ShapeError, match=r"expected input of shape \(N, L, 8\), got \(2, 8, 5\)"):
        model(torch.randn(2, 8, 5))


def test_sum_merge_reads_out_the_sum_of_both_final_states():
    torch.manual_seed(0)
    model = SequenceClassifier(ModelConfig(hidden_size=6, bidirectional=True, merge_mode="sum"), SPEC).eval()
    x = torch.randn(3, 8, 8)
    _, (h_n, _) = model.lstm(x)
    torch.testing.assert_close(model(x), model.head(h_n[-2] + h_n[-1]))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"recurrent_dropout": 1.5}, r"config \[model\]: LSTM: recurrent_dropout: expected a probability in \[0, 1\), got 1.5"),
        ({"zoneout": [0.1, 0.2, 0.3]}, r"config \[model\]: LSTM: zoneout: expected a probability"),
        ({"cell_clip": -1.0}, r"config \[model\]: LSTM: cell_clip: expected None \(no clipping\) or a number > 0"),
        ({"merge_mode": "sum"}, r"config \[model\]: LSTM: merge_mode='sum' combines the two directions"),
    ],
)
def test_bad_variant_options_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(ModelConfig(hidden_size=4, **overrides), SPEC)


def test_chrono_init_reaches_the_lstm_and_replaces_forget_bias():
    torch.manual_seed(0)
    model = SequenceClassifier(ModelConfig(hidden_size=6, forget_bias=5.0, chrono_init=30), SPEC)
    bias = model.lstm.bias_ih_l0
    assert model.lstm.chrono_init == 30
    assert torch.equal(bias[:6], -bias[6:12]) and bias[6:12].max() <= torch.log(torch.tensor(29.0))


def test_the_lstm_gets_every_lstm_key_of_model_as_one_options_object():
    """Each [model] key named like an LSTMOptions.create argument reaches the LSTM, whole."""
    from lstmkit.models.classifier import LSTM_KEYS, lstm_options
    from lstmkit.nn import LSTMOptions

    config = ModelConfig(hidden_size=12, num_layers=2, dropout=0.1, bidirectional=True, proj_size=5,
                         cell_activation="relu", forget_bias=0.5, init="torch", chrono_init=7, peephole=True,
                         layer_norm=True, zoneout=[0.1, 0.2], cell_clip=3.0, residual=False, merge_mode="sum")
    model = build_model(config, SPEC)
    assert model.lstm.options == lstm_options(config, SPEC.input_size) == LSTMOptions.create(
        8, 12, num_layers=2, batch_first=True, dropout=0.1, bidirectional=True, proj_size=5, cell_activation="relu",
        forget_bias=0.5, init="torch", chrono_init=7, peephole=True, layer_norm=True, zoneout=(0.1, 0.2),
        cell_clip=3.0, merge_mode="sum")
    assert set(LSTM_KEYS) == {"hidden_size", "num_layers", "dropout", "bidirectional", "proj_size", "gate_activation",
                              "cell_activation", "hidden_activation", "forget_bias", "init", "chrono_init", "peephole",
                              "coupled_gates", "layer_norm", "recurrent_dropout", "zoneout", "weight_drop",
                              "cell_clip", "residual", "merge_mode"}
    # [model] dropout acts between stacked layers: one layer gets none (and no warning)
    assert lstm_options(ModelConfig(dropout=0.3), 8).dropout == 0.0


def test_an_invalid_lstm_key_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"^config \[model\]: LSTM: zoneout: expected a probability in \[0, 1\)"):
        build_model(ModelConfig(hidden_size=12, zoneout=1.5), SPEC)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"peephole": True}, "peephole = True"), ({"zoneout": [0.1, 0.0]}, r"zoneout = \(0.1, 0.0\)"),
     ({"proj_size": 4}, "proj_size = 4"), ({"bidirectional": True, "merge_mode": "sum"}, "merge_mode = 'sum'")],
)
def test_the_rnn_baseline_refuses_lstm_options(overrides, named):
    with pytest.raises(ConfigError, match=rf"^config \[model\]: {named}: LSTM options, but task 'rnn-classifier'"):
        build_model(ModelConfig(task="rnn-classifier", hidden_size=12, **overrides), SPEC)
    build_model(ModelConfig(task="rnn-classifier", hidden_size=12, zoneout=[0.0, 0.0]), SPEC)  # off is off


@pytest.mark.parametrize("conv", ["conv1d", "conv2d"])
def test_a_zero_channel_count_names_the_conv_kind_and_the_index(conv):
    """Issue 17 item 9: conv1d with conv_channels=[0] named "conv2d" pooling in its error."""
    with pytest.raises(ConfigError, match=rf"config \[model\] conv_channels\[1\]: expected a channel count in "
                                          rf"1..65536 for {conv}, got 0"):
        build_model(ModelConfig(conv=conv, conv_channels=[4, 0]), SPEC)
