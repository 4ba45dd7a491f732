"""Every bad variant argument raises an error that names the argument, what it accepts and what it got."""

from __future__ import annotations

import pytest
import torch

from lstmkit.errors import ShapeError
from lstmkit.nn import LSTM
from lstmkit.nn import layer as nn_layer
from lstmkit.nn.variants import Variants


@pytest.mark.parametrize("argument", ["gate_activation", "cell_activation", "hidden_activation"])
def test_unknown_activation_with_a_variant(argument: str) -> None:
    with pytest.raises(ValueError, match=rf"LSTM: {argument}: expected one of 'sigmoid', .*'softsign', got 'gelu'"):
        LSTM(3, 4, peephole=True, **{argument: "gelu"})


@pytest.mark.parametrize("argument", ["recurrent_dropout", "weight_drop"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_bad_probability(argument: str, value) -> None:
    with pytest.raises(ValueError, match=rf"LSTM: {argument}: expected a probability in \[0, 1\), got"):
        LSTM(3, 4, **{argument: value})


@pytest.mark.parametrize("value", [-0.1, 1.0, "0.5", (0.1, 1.0), (-0.5, 0.1)])
def test_bad_zoneout(value) -> None:
    with pytest.raises(ValueError, match=r"LSTM: zoneout: expected a probability in \[0, 1\)"):
        LSTM(3, 4, zoneout=value)


def test_zoneout_pair_of_wrong_length() -> None:
    message = r"LSTM: zoneout: expected .* or a pair \(p_h, p_c\) of them, got \(0.1, 0.2, 0.3\)"
    with pytest.raises(ValueError, match=message):
        LSTM(3, 4, zoneout=(0.1, 0.2, 0.3))


@pytest.mark.parametrize("value", [0, -1.0, "3", True])
def test_bad_cell_clip(value) -> None:
    with pytest.raises(ValueError, match=r"LSTM: cell_clip: expected None \(no clipping\) or a number > 0, got"):
        LSTM(3, 4, cell_clip=value)


@pytest.mark.parametrize("argument", ["peephole", "coupled_gates", "layer_norm", "residual"])
def test_flag_must_be_bool(argument: str) -> None:
    with pytest.raises(ValueError, match=rf"LSTM: {argument}: expected True or False, got 1"):
        LSTM(3, 4, **{argument: 1})


def test_unknown_merge_mode() -> None:
    with pytest.raises(ValueError, match=r"LSTM: merge_mode: expected one of 'concat', 'sum', 'mean', got 'max'"):
        LSTM(3, 4, bidirectional=True, merge_mode="max")


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_merge_mode_without_bidirectional(mode: str) -> None:
    message = rf"LSTM: merge_mode='{mode}' combines the two directions .* bidirectional=False"
    with pytest.raises(ValueError, match=message):
        LSTM(3, 4, merge_mode=mode)


def test_residual_with_unequal_widths() -> None:
    """In LSTM every layer k > 0 has equal input and output widths; the layer loop checks it for any stack."""
    weights = [
        [nn_layer.LayerWeights(torch.randn(8, 3), torch.randn(8, 2), None, None, None)],  # H = 2
        [nn_layer.LayerWeights(torch.randn(12, 2), torch.randn(12, 3), None, None, None)],  # 2 in, H = 3 out
    ]
    states = [torch.zeros(1, 2), torch.zeros(1, 3)]  # per layer: (N, H)
    message = (
        r"LSTM: residual: layer 1 adds its input to its output, which needs equal widths; "
        r"got input width 2 and output width 3"
    )
    with pytest.raises(ValueError, match=message):
        nn_layer.reference_lstm(torch.randn(4, 1, 3), states, states, weights, variants=Variants(residual=True))


def test_residual_with_one_layer_warns() -> None:
    message = r"residual=True connects stacked layers \(k > 0\) only, so it does nothing with num_layers=1"
    with pytest.warns(UserWarning, match=message):
        LSTM(3, 4, residual=True)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (dict(peephole=True), r"peephole=True"),
        (dict(coupled_gates=True), r"coupled_gates=True"),
        (dict(layer_norm=True), r"layer_norm=True"),
        (dict(recurrent_dropout=0.2), r"recurrent_dropout=0.2"),
        (dict(zoneout=0.1), r"zoneout=\(0.1, 0.1\)"),
        (dict(weight_drop=0.3), r"weight_drop=0.3"),
        (dict(cell_clip=3), r"cell_clip=3.0"),
        (dict(residual=True, num_layers=2), r"residual=True"),
        (dict(merge_mode="sum", bidirectional=True), r"merge_mode='sum'"),
    ],
)
def test_fused_with_a_variant(kwargs: dict, named: str) -> None:
    message = rf"LSTM: impl='fused' .* vanilla LSTM only; got {named}. Use impl='auto' or 'reference'"
    with pytest.raises(ValueError, match=message):
        LSTM(3, 4, impl="fused", **kwargs)


def test_step_on_bidirectional() -> None:
    lstm = LSTM(3, 4, bidirectional=True)
    message = r"LSTM.step: expected a unidirectional LSTM, got bidirectional=True; the reverse"
    with pytest.raises(ValueError, match=message):
        lstm.step(torch.randn(2, 3))


@pytest.mark.parametrize("shape", [(2, 4), (4,), (1, 2, 3)])
def test_step_wrong_input_shape(shape) -> None:
    message = r"LSTM.step: expected x_t of shape \(N, H_in\) or unbatched \(H_in,\) with H_in=3, got shape"
    with pytest.raises(ShapeError, match=message):
        LSTM(3, 4).step(torch.randn(shape))


def test_step_wrong_state() -> None:
    lstm = LSTM(3, 4, num_layers=2, proj_size=2)
    message = r"LSTM.step: expected h of shape \(2, 5, 2\) \(num_layers, N, H_out\), got \(2, 5, 4\)"
    with pytest.raises(ShapeError, match=message):
        lstm.step(torch.randn(5, 3), (torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)))
    message = r"LSTM.step: expected c of shape \(2, 4\) \(num_layers, H_cell\), got \(2, 1, 4\)"
    with pytest.raises(ShapeError, match=message):
        lstm.step(torch.randn(3), (torch.zeros(2, 2), torch.zeros(2, 1, 4)))
    with pytest.raises(TypeError, match=r"LSTM.step: expected state to be a tuple \(h, c\) of two tensors, got Tensor"):
        lstm.step(torch.randn(5, 3), torch.zeros(2, 5, 2))


def test_step_wrong_dtype() -> None:
    message = r"LSTM.step: expected x_t of dtype torch.float32 like the parameters, got torch.float64"
    with pytest.raises(ValueError, match=message):
        LSTM(3, 4).step(torch.randn(2, 3, dtype=torch.float64))


def test_to_torch_refuses_variants() -> None:
    message = r"LSTM.to_torch: .* the vanilla LSTM only; this LSTM has layer_norm=True, cell_clip=1.0$"
    with pytest.raises(ValueError, match=message):
        LSTM(3, 4, layer_norm=True, cell_clip=1).to_torch()
