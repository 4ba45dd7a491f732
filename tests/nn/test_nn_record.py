"""Gate recording (lstmkit.nn.record): what it records is what the LSTM computes, and it leaves no trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lstmkit.nn import LSTM, record_gates
from lstmkit.nn.record import is_recorded

VARIANTS = [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"proj_size": 3, "num_layers": 2},
    {"peephole": True, "cell_clip": 0.5},
    {"coupled_gates": True, "peephole": True},
    {"layer_norm": True, "zoneout": (0.1, 0.2)},
    {"bidirectional": True, "merge_mode": "sum", "num_layers": 2, "recurrent_dropout": 0.2, "weight_drop": 0.1},
    {"gate_activation": "hard_sigmoid", "cell_activation": "relu", "hidden_activation": "softsign"},
]


def top_hidden(recording, lstm: LSTM) -> torch.Tensor:
    """The top layer's recorded outputs, merged as the LSTM merges its directions."""
    top = lstm.num_layers - 1
    hidden = [recording.trace(layer=top, direction=d).hidden for d in range(lstm.num_directions)]
    if len(hidden) == 1:
        return hidden[0]
    merge = lstm.variants.merge_mode
    return hidden[0] + hidden[1] if merge == "sum" else (hidden[0] + hidden[1]) / 2 if merge == "mean" else torch.cat(hidden, -1)


@pytest.mark.parametrize("lengths", [None, [9, 5, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: ",".join(c) or "vanilla")
def test_recorded_hidden_states_are_the_output_and_states(config, lengths):
    torch.manual_seed(0)
    lstm = LSTM(4, 6, batch_first=True, **config).eval()
    x = torch.randn(3, 9, 4)
    output, (h_n, c_n) = lstm(x, lengths=lengths)
    with record_gates(lstm) as recording:
        recorded_output, (recorded_h_n, _) = lstm(x, lengths=lengths)
    torch.testing.assert_close(recorded_output, output, atol=1e-5, rtol=0)
    torch.testing.assert_close(top_hidden(recording, lstm), output, atol=1e-5, rtol=0)
    last = torch.tensor(lengths or [9, 9, 9]) - 1
    for k in range(lstm.num_layers):
        forward = recording.trace(layer=k, direction=0)
        # The forward direction ends at each sequence's last step, the reverse one at step 0.
        torch.testing.assert_close(forward.cell[torch.arange(3), last], c_n[k * lstm.num_directions], atol=1e-5, rtol=0)
        torch.testing.assert_close(forward.hidden[torch.arange(3), last], h_n[k * lstm.num_directions], atol=1e-5, rtol=0)
        if lstm.bidirectional:
            reverse = recording.trace(layer=k, direction=1)
            torch.testing.assert_close(reverse.cell[:, 0], c_n[2 * k + 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(recorded_h_n, h_n, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", [{}, {"peephole": True, "layer_norm": True}, {"gate_activation": "hard_sigmoid"}],
                         ids=["vanilla", "peephole,layer_norm", "hard_sigmoid"])
def test_sigmoid_gates_lie_in_0_1_and_the_cell_update_holds(config):
    torch.manual_seed(1)
    lstm = LSTM(3, 5, num_layers=2, **config).eval()  # time-major input: traces are batch first anyway
    x = 3 * torch.randn(11, 2, 3)
    with record_gates(lstm) as recording:
        lstm(x)
    for k in range(2):
        t = recording.trace(layer=k)
        assert t.input_gate.shape == (2, 11, 5) and t.hidden.shape == (2, 11, 5)
        for gate in (t.input_gate, t.forget_gate, t.output_gate):
            assert float(gate.min()) >= 0.0 and float(gate.max()) <= 1.0
        previous = torch.cat([torch.zeros(2, 1, 5), t.cell[:, :-1]], dim=1)  # c_{t-1}, from c_0 = 0
        torch.testing.assert_close(t.cell, t.forget_gate * previous + t.input_gate * t.candidate)


def test_packed_input_and_a_model_holding_the_lstm_are_recorded():
    torch.manual_seed(2)
    model = nn.Sequential()
    model.add_module("rnn", LSTM(2, 4))
    x = torch.randn(6, 3, 2)
    packed = pack_padded_sequence(x, torch.tensor([6, 2, 4]), enforce_sorted=False)
    with record_gates(model) as recording:
        model.rnn(packed)
        model.rnn(x)
    assert recording.modules == ["rnn"]
    first, last = recording.trace(call=0), recording.trace()
    assert first.cell[1, 2:].abs().max() == 0 and last.cell[1, 2:].abs().max() > 0
    torch.testing.assert_close(first.hidden[0], last.hidden[0])  # the full-length sequence is the same


def test_recording_leaves_the_module_on_its_fast_path_even_after_an_error():
    lstm = LSTM(2, 4)
    assert lstm.backend == "fused"
    with pytest.raises(RuntimeError, match="boom"):
        with record_gates(lstm):
            raise RuntimeError("boom")
    assert not is_recorded(lstm) and lstm.choose_backend(torch.zeros(1, 2)).name == "fused"


def test_detach_false_keeps_the_graph():
    lstm = LSTM(2, 3)
    x = torch.randn(5, 1, 2, requires_grad=True)
    with record_gates(lstm, detach=False) as recording:
        lstm(x)
    recording.trace().forget_gate[0, -1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match=r"record_gates: expected a module that is or holds an lstmkit.nn.LSTM, got Linear"):
        record_gates(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"record_gates: expected a torch.nn.Module .*, got list"):
        record_gates([LSTM(2, 2)])
    lstm = LSTM(2, 2)
    with record_gates(lstm) as recording:
        lstm(torch.randn(3, 1, 2))
        with pytest.raises(ValueError, match=r"already being recorded"):
            with record_gates(lstm):
                pass
    with pytest.raises(KeyError, match=r"expected one of the recorded \(module, call, layer, direction\) \[\('', 0, 0, 0\)\], got \('', -1, 1, 0\)"):
        recording.trace(layer=1)
    two = nn.ModuleDict({"a": LSTM(2, 2), "b": LSTM(2, 2)})
    with record_gates(two) as recording:
        two["a"](torch.randn(3, 1, 2))
    with pytest.raises(KeyError, match=r"several LSTMs, \['a', 'b'\]; pass module=NAME"):
        recording.trace()
