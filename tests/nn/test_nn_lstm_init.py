"""Parameter layout and initialisation of lstmkit.nn.LSTM."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lstmkit.nn import LSTM

CONFIGS = [
    dict(input_size=3, hidden_size=4),
    dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, proj_size=2),
    dict(input_size=2, hidden_size=4, num_layers=3, bias=False),
    dict(input_size=2, hidden_size=6, num_layers=2, proj_size=3, bias=False, bidirectional=True),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_parameters_have_torch_names_shapes_and_order(config: dict) -> None:
    theirs, ours = nn.LSTM(**config), LSTM(**config)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("config", CONFIGS)
def test_torch_init_reproduces_torch_lstm(config: dict, seed: int) -> None:
    torch.manual_seed(seed)
    theirs = nn.LSTM(**config)
    torch.manual_seed(seed)
    ours = LSTM(**config, init="torch")
    for (name, expected), (_, actual) in zip(theirs.named_parameters(), ours.named_parameters()):
        assert torch.equal(actual, expected), name
    # Both consumed the RNG identically, so what is drawn next is the same too.
    after_ours = torch.rand(3)
    torch.manual_seed(seed)
    nn.LSTM(**config)
    assert torch.equal(after_ours, torch.rand(3))


@pytest.mark.parametrize("forget_bias", [1.0, 2.5])
@pytest.mark.parametrize("config", [c for c in CONFIGS if c.get("bias", True)])
def test_default_init(config: dict, forget_bias: float) -> None:
    torch.manual_seed(0)
    lstm = LSTM(**config, forget_bias=forget_bias)
    size = lstm.hidden_size
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            expected = torch.zeros(4 * size)
            expected[size : 2 * size] = forget_bias
            assert torch.equal(p, expected), name
        elif name.startswith("bias_hh"):
            assert torch.equal(p, torch.zeros(4 * size)), name
        elif name.startswith("weight_hh"):
            for block in p.split(size):  # (H, H_out) per gate
                eye = torch.eye(block.shape[1])
                assert torch.allclose(block.T @ block, eye, atol=1e-5), name
        elif name.startswith("weight_hr"):
            assert torch.allclose(p @ p.T, torch.eye(p.shape[0]), atol=1e-5), name
        elif name.startswith("weight_ih"):
            fan_out, fan_in = p.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert p.abs().max() <= bound, name
            assert p.abs().max() > 0.5 * bound, name  # uniform over the whole Glorot range, not tiny
        else:
            pytest.fail(f"unexpected parameter {name}")


def test_reset_parameters_draws_again() -> None:
    torch.manual_seed(0)
    lstm = LSTM(3, 4)
    before = {n: p.clone() for n, p in lstm.named_parameters()}
    lstm.reset_parameters()
    assert not torch.equal(before["weight_ih_l0"], lstm.weight_ih_l0)
    assert torch.equal(before["bias_ih_l0"], lstm.bias_ih_l0)  # deterministic part stays


def test_device_and_dtype() -> None:
    lstm = LSTM(3, 4, proj_size=2, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in lstm.parameters())
    output, (h_n, c_n) = lstm(torch.randn(5, 2, 3, dtype=torch.float64))
    assert output.dtype == h_n.dtype == c_n.dtype == torch.float64
    assert output.shape == (5, 2, 2) and h_n.shape == (1, 2, 2) and c_n.shape == (1, 2, 4)


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.get("bias", True)])
def test_chrono_init_sets_forget_biases_in_log_range_and_input_biases_to_their_negatives(config: dict) -> None:
    torch.manual_seed(0)
    lstm = LSTM(**config, chrono_init=50, forget_bias=3.0)  # chrono replaces forget_bias
    size = lstm.hidden_size
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            input_gate, forget_gate, cell, output = p.split(size)
            assert forget_gate.min() >= 0.0 and forget_gate.max() <= math.log(49.0), name
            assert forget_gate.std() > 0, name  # drawn per unit, not one value
            assert torch.equal(input_gate, -forget_gate), name
            assert torch.equal(cell, torch.zeros(size)) and torch.equal(output, torch.zeros(size)), name
        elif name.startswith("bias_hh"):
            assert torch.equal(p, torch.zeros(4 * size)), name


def test_chrono_init_with_coupled_gates_sets_the_input_gate_only() -> None:
    torch.manual_seed(0)
    lstm = LSTM(3, 4, coupled_gates=True, chrono_init=20)
    input_gate, rest = lstm.bias_ih_l0[:4], lstm.bias_ih_l0[4:]
    assert input_gate.max() <= 0.0 and input_gate.min() >= -math.log(19.0)  # f = 1 - i = sigmoid(-b_i)
    assert torch.equal(rest, torch.zeros_like(rest))


def test_chrono_init_applies_after_torch_init_and_shows_in_repr() -> None:
    lstm = LSTM(3, 4, init="torch", chrono_init=10)
    assert torch.equal(lstm.bias_ih_l0[:4], -lstm.bias_ih_l0[4:8])
    assert torch.equal(lstm.bias_hh_l0[:8], torch.zeros(8))
    assert "chrono_init=10" in repr(lstm)
