"""The LSTM variants against a NumPy transcription of their equations, gradient checks, streaming, dropout."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmkit.nn import LSTM

EPS = 1e-5  # LayerNorm epsilon, as documented


# --- The equations, written out in NumPy for one sequence, gate by gate ------------------------------------


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


NP_ACTIVATIONS = {
    "sigmoid": sigmoid,
    "hard_sigmoid": lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "softsign": lambda z: z / (1.0 + np.abs(z)),
}


def layer_norm(z, gain, shift=0.0):
    centred = z - z.mean()
    return centred / np.sqrt((centred**2).mean() + EPS) * gain + shift


def np_params(lstm: LSTM, k: int, suffix: str) -> dict[str, np.ndarray]:
    """The parameters of layer ``k`` in one direction, by their name without the layer suffix."""
    end = f"_l{k}{suffix}"
    return {
        name[: -len(end)]: p.detach().numpy()
        for name, p in lstm.named_parameters()
        if name.endswith(end) and (suffix or not name.endswith("_reverse"))
    }


def np_step(lstm: LSTM, p: dict, x, h, c, zone=(0.0, 0.0), h_mask=None, w_hh=None):
    """One step of one layer for one sequence: returns (h_t, c_t). ``zone`` are the zoneout weights (the
    probabilities in evaluation, or 0/1 masks), ``h_mask`` a recurrent-dropout mask, ``w_hh`` a weight_hh
    to use instead of the parameter (weight drop)."""
    v = lstm.variants
    names = (lstm.gate_activation, lstm.cell_activation, lstm.hidden_activation)
    gate, cell, hidden = (NP_ACTIVATIONS[name] for name in names)
    size = c.shape[0]
    w_hh = p["weight_hh"] if w_hh is None else w_hh
    h_in = h if h_mask is None else h * h_mask
    wx, wh = p["weight_ih"] @ x, w_hh @ h_in
    if v.layer_norm:
        wx, wh = layer_norm(wx, p["ln_ih_weight"]), layer_norm(wh, p["ln_hh_weight"])
    z = wx + wh + (p["bias_ih"] + p["bias_hh"] if lstm.bias else 0.0)
    if v.coupled_gates:
        z_i, z_g, z_o = z[:size], z[size : 2 * size], z[2 * size :]
    else:
        z_i, z_f, z_g, z_o = z[:size], z[size : 2 * size], z[2 * size : 3 * size], z[3 * size :]
    if v.peephole:
        peep = p["weight_peephole"]
        z_i = z_i + peep[0] * c
        if not v.coupled_gates:
            z_f = z_f + peep[1] * c
    i = gate(z_i)
    f = 1.0 - i if v.coupled_gates else gate(z_f)
    c_new = f * c + i * cell(z_g)
    if v.cell_clip is not None:
        c_new = np.clip(c_new, -v.cell_clip, v.cell_clip)
    if v.peephole:
        z_o = z_o + p["weight_peephole"][-1] * c_new
    o = gate(z_o)
    c_in = layer_norm(c_new, p["ln_c_weight"], p["ln_c_bias"]) if v.layer_norm else c_new
    h_new = o * hidden(c_in)
    if lstm.proj_size:
        h_new = p["weight_hr"] @ h_new
    h_new = zone[0] * h + (1.0 - zone[0]) * h_new
    c_new = zone[1] * c + (1.0 - zone[1]) * c_new
    return h_new, c_new


def np_lstm(lstm: LSTM, x, h0, c0, lengths=None):
    """The module in evaluation mode on a time-major padded batch x (L, N, H_in), one sequence at a time.

    Returns output (L, N, W) with zeros past each end, h_n and c_n, as NumPy arrays.
    """
    x, h0, c0 = (t.detach().numpy() for t in (x, h0, c0))
    seq_len, batch, _ = x.shape
    lengths = [seq_len] * batch if lengths is None else list(lengths)
    v = lstm.variants
    zone = v.zoneout  # evaluation: the expectation
    directions = ["", "_reverse"] if lstm.bidirectional else [""]
    outputs, h_n, c_n = [], np.zeros(h0.shape), np.zeros(c0.shape)
    for b in range(batch):
        seq = x[: lengths[b], b]  # only the real steps
        for k in range(lstm.num_layers):
            per_direction = []
            for d, suffix in enumerate(directions):
                p, state = np_params(lstm, k, suffix), k * len(directions) + d
                h, c = h0[state, b], c0[state, b]
                steps = range(len(seq)) if d == 0 else reversed(range(len(seq)))
                out = [None] * len(seq)
                for t in steps:
                    h, c = np_step(lstm, p, seq[t], h, c, zone)
                    out[t] = h
                h_n[state, b], c_n[state, b] = h, c
                per_direction.append(np.stack(out))
            if v.merge_mode == "sum" and len(directions) == 2:
                y = per_direction[0] + per_direction[1]
            elif v.merge_mode == "mean" and len(directions) == 2:
                y = (per_direction[0] + per_direction[1]) / 2
            else:
                y = np.concatenate(per_direction, axis=1)
            if v.residual and k > 0:
                y = y + seq
            seq = y
        padded = np.zeros((seq_len, seq.shape[1]))
        padded[: lengths[b]] = seq
        outputs.append(padded)
    return np.stack(outputs, axis=1), h_n, c_n


# --- Helpers ---------------------------------------------------------------------------------------------


def make_lstm(seed: int, input_size: int = 2, hidden_size: int = 3, **kwargs) -> LSTM:
    """A float64 LSTM with non-trivial values in every parameter, including the variants' (whose init is
    0 or 1, which would hide a missing or misplaced term)."""
    torch.manual_seed(seed)
    lstm = LSTM(input_size, hidden_size, init="torch", dtype=torch.float64, **kwargs)
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("weight_peephole"):
                p.copy_(torch.randn_like(p))
            elif name.startswith("ln_") and "weight" in name:
                p.copy_(1.0 + 0.5 * torch.randn_like(p))
            elif name.startswith("ln_"):
                p.copy_(0.5 * torch.randn_like(p))
    return lstm


def inputs(lstm: LSTM, seq_len: int, batch: int, seed: int, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    states = lstm.num_layers * lstm.num_directions
    x = scale * torch.randn(seq_len, batch, lstm.input_size, generator=gen, dtype=torch.float64)
    h0 = torch.randn(states, batch, lstm.output_size, generator=gen, dtype=torch.float64)
    c0 = torch.randn(states, batch, lstm.hidden_size, generator=gen, dtype=torch.float64)
    return x, h0, c0


def assert_matches_numpy(lstm: LSTM, x, h0, c0, lengths=None, atol=1e-12):
    output, (h_n, c_n) = lstm(x, (h0, c0), lengths=lengths)
    expected = np_lstm(lstm, x, h0, c0, lengths)
    for name, actual, wanted in zip(("output", "h_n", "c_n"), (output, h_n, c_n), expected):
        np.testing.assert_allclose(actual.detach().numpy(), wanted, rtol=0, atol=atol, err_msg=name)
    return output, h_n, c_n


# --- Golden values: each variant against the NumPy equations, 2 steps ------------------------------------

VARIANTS = {
    "peephole": dict(peephole=True),
    "coupled_gates": dict(coupled_gates=True),
    "peephole+coupled_gates": dict(peephole=True, coupled_gates=True),
    "layer_norm": dict(layer_norm=True),
    "cell_clip": dict(cell_clip=0.15),
    "zoneout": dict(zoneout=0.3),
    "zoneout_pair": dict(zoneout=(0.2, 0.6)),
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "weight_drop": dict(weight_drop=0.4),
    "residual": dict(residual=True, num_layers=2),
    "merge_sum": dict(merge_mode="sum", bidirectional=True, num_layers=2),
    "merge_mean": dict(merge_mode="mean", bidirectional=True, num_layers=2),
}


@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_variant_matches_equations(variant: str, proj_size: int) -> None:
    lstm = make_lstm(0, hidden_size=3, proj_size=proj_size, **VARIANTS[variant]).eval()
    assert not lstm.fused
    x, h0, c0 = inputs(lstm, seq_len=2, batch=2, seed=1, scale=2.0)
    output, _, c_n = assert_matches_numpy(lstm, x, h0, c0)
    if variant == "cell_clip":
        assert c_n.abs().max().item() == pytest.approx(0.15), "the data must exercise the clipping"


@pytest.mark.parametrize("variant", ["peephole", "coupled_gates", "layer_norm", "cell_clip", "zoneout", "residual"])
def test_variant_changes_the_function(variant: str) -> None:
    """The golden test is only as good as the reference: each variant must change the output."""
    config = VARIANTS[variant]
    lstm = make_lstm(0, **config).eval()
    x, h0, c0 = inputs(lstm, seq_len=2, batch=2, seed=1, scale=2.0)
    output = lstm(x, (h0, c0))[0]
    vanilla_config = {k: v for k, v in config.items() if k in ("num_layers", "bidirectional")}
    vanilla = LSTM(2, 3, init="torch", dtype=torch.float64, **vanilla_config)
    if variant == "coupled_gates":  # other shapes: compare with f computed on its own instead
        with torch.no_grad():
            for name, p in vanilla.named_parameters():
                p.copy_(torch.cat([getattr(lstm, name)[:3], torch.zeros_like(p[:3]), getattr(lstm, name)[3:]]))
    else:
        vanilla.load_state_dict(lstm.state_dict(), strict=False)
    assert (output - vanilla(x, (h0, c0))[0]).abs().max().item() > 1e-3


def test_cell_clip_by_hand() -> None:
    """H = 1, all weights zero except the candidate's bias: c_t = 0.5 c_{t-1} + 0.5 tanh(5), clipped."""
    lstm = LSTM(1, 1, cell_clip=0.3, dtype=torch.float64)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.bias_ih_l0[2] = 5.0  # g = tanh(5); i = f = o = sigmoid(0) = 0.5
    output, (_, c_n) = lstm(torch.zeros(2, 1, 1, dtype=torch.float64))
    c1 = min(0.5 * np.tanh(5.0), 0.3)
    c2 = min(0.5 * c1 + 0.5 * np.tanh(5.0), 0.3)
    assert c2 == 0.3
    assert c_n.item() == pytest.approx(c2, abs=1e-15)
    assert output[0].item() == pytest.approx(0.5 * np.tanh(c1), abs=1e-15)


def test_coupled_gates_by_hand() -> None:
    """CIFG with H = 1: weights stack i, g, o only; f = 1 - i."""
    lstm = LSTM(1, 1, coupled_gates=True, dtype=torch.float64)
    assert lstm.weight_ih_l0.shape == (3, 1) and lstm.bias_hh_l0.shape == (3,)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor([[1.0], [2.0], [0.0]]))
        lstm.weight_hh_l0.zero_()
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
    c0 = torch.tensor([[[0.7]]], dtype=torch.float64)
    _, (h_n, c_n) = lstm(torch.tensor([[[0.5]]], dtype=torch.float64), (torch.zeros_like(c0), c0))
    i = sigmoid(0.5)
    c1 = (1 - i) * 0.7 + i * np.tanh(1.0)
    assert c_n.item() == pytest.approx(c1, abs=1e-15)
    assert h_n.item() == pytest.approx(0.5 * np.tanh(c1), abs=1e-15)


def test_zoneout_evaluation_is_the_expectation() -> None:
    """zoneout=(p_h, p_c) in eval: h = p_h h_{t-1} + (1 - p_h) h~ with h~ the plain cell's output."""
    zoned = make_lstm(2, zoneout=(0.25, 0.5)).eval()
    plain = LSTM(2, 3, dtype=torch.float64)
    plain.load_state_dict(zoned.state_dict())
    x, h0, c0 = inputs(zoned, seq_len=1, batch=2, seed=3)
    out, (h_n, c_n) = zoned(x, (h0, c0))
    h_tilde, (_, c_tilde) = plain(x, (h0, c0))
    assert torch.allclose(h_n, 0.25 * h0 + 0.75 * h_tilde, atol=1e-14, rtol=0)
    assert torch.allclose(c_n, 0.5 * c0 + 0.5 * c_tilde, atol=1e-14, rtol=0)


# --- Training-mode masks: what each one is, recovered from the outputs ------------------------------------


def test_zoneout_training_keeps_each_unit_or_updates_it() -> None:
    """In training each unit of h_t (c_t) is its previous value or the cell's new one; about a fraction
    p_h (p_c) keep theirs."""
    lstm = make_lstm(3, hidden_size=8, zoneout=(0.3, 0.6)).train()
    x, h0, c0 = inputs(lstm, seq_len=1, batch=16, seed=4)
    torch.manual_seed(0)
    _, (h_n, c_n) = lstm(x, (h0, c0))
    p = np_params(lstm, 0, "")
    kept_h, kept_c = [], []
    for b in range(16):
        h_new, c_new = np_step(lstm, p, x[0, b].numpy(), h0[0, b].numpy(), c0[0, b].numpy())
        for actual, old, new, kept in ((h_n, h0, h_new, kept_h), (c_n, c0, c_new, kept_c)):
            is_old = np.isclose(actual[0, b].detach().numpy(), old[0, b].numpy(), rtol=0, atol=1e-12)
            is_new = np.isclose(actual[0, b].detach().numpy(), new, rtol=0, atol=1e-12)
            assert np.all(is_old | is_new), "each unit is its old or its new value"
            kept.append(is_old & ~is_new)
    assert 0.15 < np.mean(kept_h) < 0.45
    assert 0.45 < np.mean(kept_c) < 0.75


def test_zoneout_training_draws_a_fresh_mask_every_step() -> None:
    lstm = make_lstm(5, hidden_size=8, zoneout=(0.5, 0.0)).train()  # c is not zoned, so it can be tracked
    x, h0, c0 = inputs(lstm, seq_len=3, batch=4, seed=5)
    torch.manual_seed(0)
    output = lstm(x, (h0, c0))[0].detach().numpy()
    p = np_params(lstm, 0, "")
    masks = []
    for b in range(4):
        h, c = h0[0, b].numpy(), c0[0, b].numpy()
        for t in range(3):
            h_new, c = np_step(lstm, p, x[t, b].numpy(), h, c)
            is_old = np.isclose(output[t, b], h, rtol=0, atol=1e-12)
            assert np.all(is_old | np.isclose(output[t, b], h_new, rtol=0, atol=1e-12))
            masks.append((t, tuple(is_old)))
            h = output[t, b]
    per_step = [{m for t, m in masks if t == step} for step in range(3)]
    assert per_step[0] != per_step[1] or per_step[1] != per_step[2]


def matching_masks(lstm: LSTM, x, h0, c0, output, candidates, apply) -> list:
    """The candidate masks that explain every step of ``output`` for every sequence."""
    p = np_params(lstm, 0, "")
    found = []
    for mask in candidates:
        ok = True
        for b in range(x.size(1)):
            h, c = h0[0, b].numpy(), c0[0, b].numpy()
            for t in range(x.size(0)):
                h, c = np_step(lstm, p, x[t, b].numpy(), h, c, **apply(mask, b))
                ok = ok and np.allclose(h, output[t, b], rtol=0, atol=1e-12)
        if ok:
            found.append(mask)
    return found


def test_recurrent_dropout_uses_one_mask_per_sequence() -> None:
    """Brute force over the 4 masks of H = 2 units: one mask explains all steps of each sequence."""
    p = 0.5
    lstm = make_lstm(6, input_size=1, hidden_size=2, recurrent_dropout=p).train()
    x, h0, c0 = inputs(lstm, seq_len=3, batch=3, seed=6)
    values = [np.array(m) / (1 - p) for m in itertools.product([0.0, 1.0], repeat=2)]
    dropped = 0
    for seed in range(4):
        torch.manual_seed(seed)
        output = lstm(x, (h0, c0))[0].detach().numpy()
        for b in range(3):
            found = matching_masks(lstm, x[:, b : b + 1], h0[:, b : b + 1], c0[:, b : b + 1], output[:, b : b + 1],
                                   values, lambda mask, _: {"h_mask": mask})  # fmt: skip
            assert len(found) == 1, f"seed {seed}, sequence {b}: {len(found)} masks explain the output"
            dropped += int((found[0] == 0).sum())
    assert dropped > 0


def test_weight_drop_uses_one_mask_per_forward() -> None:
    """Brute force over the 16 DropConnect masks of weight_hh (4, 1): one explains every step of every
    sequence of a forward call."""
    p = 0.5
    lstm = make_lstm(7, input_size=1, hidden_size=1, weight_drop=p).train()
    x, h0, c0 = inputs(lstm, seq_len=3, batch=2, seed=7)
    w_hh = lstm.weight_hh_l0.detach().numpy()
    candidates = [w_hh * np.array(m).reshape(4, 1) / (1 - p) for m in itertools.product([0.0, 1.0], repeat=4)]
    dropped = 0
    for seed in range(4):
        torch.manual_seed(seed)
        output = lstm(x, (h0, c0))[0].detach().numpy()
        found = matching_masks(lstm, x, h0, c0, output, candidates, lambda w, _: {"w_hh": w})
        assert len(found) == 1, f"seed {seed}: {len(found)} masks explain the output"
        dropped += int((found[0] == 0).sum())
    assert dropped > 0


DROPOUT_LIKE = {
    "recurrent_dropout": dict(recurrent_dropout=0.5),
    "weight_drop": dict(weight_drop=0.5),
    "zoneout": dict(zoneout=(0.3, 0.5)),
}


@pytest.mark.parametrize("variant", DROPOUT_LIKE)
def test_dropout_like_reproducible_under_manual_seed(variant: str) -> None:
    lstm = make_lstm(8, num_layers=2, proj_size=2, **DROPOUT_LIKE[variant]).train()
    x, h0, c0 = inputs(lstm, seq_len=4, batch=3, seed=8)
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        output, (h_n, c_n) = lstm(x, (h0, c0), lengths=[4, 2, 3])
        runs.append(torch.cat([output.flatten(), h_n.flatten(), c_n.flatten()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    eval_out = lstm.eval()(x, (h0, c0), lengths=[4, 2, 3])[0]
    assert not torch.allclose(eval_out, lstm.train()(x, (h0, c0), lengths=[4, 2, 3])[0])


@pytest.mark.parametrize("variant", ["recurrent_dropout", "weight_drop"])
def test_dropout_like_inactive_in_eval(variant: str) -> None:
    """In evaluation recurrent_dropout and weight_drop are the identity: torch.nn.LSTM on the same weights."""
    torch.manual_seed(9)
    theirs = nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, dtype=torch.float64).eval()
    ours = LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, dtype=torch.float64, **DROPOUT_LIKE[variant])
    ours.load_state_dict(theirs.state_dict())
    assert not ours.fused
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    expected = theirs(x)
    actual = ours.eval()(x)
    assert torch.allclose(actual[0], expected[0], atol=1e-12, rtol=0)
    assert torch.allclose(actual[1][1], expected[1][1], atol=1e-12, rtol=0)


# --- Gradient checks in float64 --------------------------------------------------------------------------

GRADCHECK = {
    **{name: VARIANTS[name] for name in ("peephole", "peephole+coupled_gates", "layer_norm", "cell_clip")},
    "coupled_gates": dict(coupled_gates=True, gate_activation="hard_sigmoid"),
    "zoneout-eval": dict(zoneout=(0.3, 0.5)),
    "zoneout-train": dict(zoneout=(0.3, 0.5)),
    "recurrent_dropout-train": dict(recurrent_dropout=0.4),
    "weight_drop-train": dict(weight_drop=0.4),
    "residual": dict(residual=True, num_layers=2),
    "merge_mean": dict(merge_mode="mean", bidirectional=True, num_layers=2),
}


@pytest.mark.parametrize("variant", GRADCHECK)
def test_gradcheck(variant: str) -> None:
    config = GRADCHECK[variant]
    stacked = config.get("num_layers", 1) > 1
    lstm = make_lstm(10, hidden_size=2 if stacked else 3, proj_size=1 if stacked else 2, **config)  # stacked: smaller
    lstm.train(variant.endswith("-train"))
    names, params = zip(*lstm.named_parameters())
    seq_len = 2 if stacked else 3
    x, h0, c0 = inputs(lstm, seq_len=seq_len, batch=2, seed=10, scale=2.0)
    leaves = [t.requires_grad_() for t in (x, h0, c0)]
    lengths = [seq_len, seq_len - 1]

    def function(x, h0, c0, *params):
        torch.manual_seed(0)  # the same masks at every evaluation
        output, (h_n, c_n) = functional_call(lstm, dict(zip(names, params)), (x, (h0, c0)), {"lengths": lengths})
        return output, h_n, c_n

    assert gradcheck(function, (*leaves, *params))


# --- Streaming: step() against the whole-sequence forward --------------------------------------------------

STEP_VARIANTS = {
    name: {k: v for k, v in config.items() if k != "num_layers"}
    for name, config in VARIANTS.items()
    if not config.get("bidirectional")
}
STEP_VARIANTS["everything"] = dict(
    peephole=True, coupled_gates=True, layer_norm=True, cell_clip=0.5, zoneout=(0.1, 0.2), recurrent_dropout=0.3,
    weight_drop=0.3, residual=True, cell_activation="relu", gate_activation="hard_sigmoid",
)


@pytest.mark.parametrize("variant", STEP_VARIANTS)
def test_step_equals_forward(variant: str) -> None:
    lstm = make_lstm(11, hidden_size=3, num_layers=2, proj_size=2, dropout=0.5, **STEP_VARIANTS[variant]).eval()
    x, h0, c0 = inputs(lstm, seq_len=4, batch=2, seed=11, scale=2.0)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    state = (h0, c0)
    for t in range(4):
        h_t, state = lstm.step(x[t], state)
        assert torch.allclose(h_t, output[t], atol=1e-12, rtol=0), f"step {t}"
    assert torch.allclose(state[0], h_n, atol=1e-12, rtol=0)
    assert torch.allclose(state[1], c_n, atol=1e-12, rtol=0)


def test_step_unbatched_and_default_state() -> None:
    lstm = make_lstm(12, num_layers=2, peephole=True, batch_first=True).eval()
    x = torch.randn(1, 3, 2, dtype=torch.float64)  # (N, L, H_in)
    output, (h_n, c_n) = lstm(x)
    state = None
    for t in range(3):
        h_t, state = lstm.step(x[0, t], state)
        assert h_t.shape == (3,) and state[0].shape == (2, 3) and state[1].shape == (2, 3)
        assert torch.allclose(h_t, output[0, t], atol=1e-12, rtol=0)
    assert torch.allclose(state[1], c_n[:, 0], atol=1e-12, rtol=0)


def test_step_of_vanilla_fused_lstm_equals_forward() -> None:
    lstm = LSTM(3, 5, num_layers=2, proj_size=2)
    assert lstm.fused
    x = torch.randn(4, 2, 3)
    output, (h_n, c_n) = lstm(x)
    state = None
    for t in range(4):
        h_t, state = lstm.step(x[t], state)
    assert torch.allclose(h_t, output[-1], atol=1e-6) and torch.allclose(state[1], c_n, atol=1e-6)


def test_step_backpropagates_in_training() -> None:
    """step backpropagates into the parameters like forward does (the training-mode masks are per call)."""
    lstm = make_lstm(13, zoneout=0.2, layer_norm=True).train()
    h_t, (h, c) = lstm.step(torch.randn(2, 2, dtype=torch.float64))
    (h_t.sum() + c.sum()).backward()
    assert all(p.grad is not None for p in lstm.parameters())


# --- Every option off is torch.nn.LSTM ----------------------------------------------------------------------

ALL_OFF = dict(
    peephole=False, coupled_gates=False, layer_norm=False, recurrent_dropout=0.0, zoneout=0.0, weight_drop=0.0,
    cell_clip=None, residual=False, merge_mode="concat",
)


@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_every_variant_off_is_torch_lstm(impl: str) -> None:
    config = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, proj_size=2, batch_first=True)
    torch.manual_seed(14)
    theirs = nn.LSTM(**config)
    ours = LSTM(**config, impl=impl, **ALL_OFF)
    assert ours.fused == (impl == "auto")
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 5, 3)
    for module in (ours, theirs):
        output, (h_n, c_n) = module(x)
        (output.sum() + h_n.sum() + c_n.sum()).backward()
    assert torch.allclose(ours(x)[0], theirs(x)[0], atol=1e-6)
    for (name, mine), (_, reference) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.allclose(mine.grad, reference.grad, atol=1e-5), name


def test_peephole_starts_as_vanilla_lstm() -> None:
    """Peephole weights start at zero: a new peephole LSTM computes torch.nn.LSTM on the same weights."""
    torch.manual_seed(15)
    lstm = LSTM(3, 4, peephole=True, bidirectional=True, dtype=torch.float64)
    assert torch.equal(lstm.weight_peephole_l0, torch.zeros(3, 4, dtype=torch.float64))
    theirs = nn.LSTM(3, 4, bidirectional=True, dtype=torch.float64)
    theirs.load_state_dict(lstm.state_dict(), strict=False)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    assert torch.allclose(lstm(x)[0], theirs(x)[0], atol=1e-12)


# --- Combinations: random mixes of every option, with lengths ----------------------------------------------


def random_combination(rng: random.Random) -> dict:
    hidden_size = rng.randint(2, 4)
    bidirectional = rng.random() < 0.7
    return dict(
        input_size=rng.randint(1, 3),
        hidden_size=hidden_size,
        num_layers=2,
        bidirectional=bidirectional,
        proj_size=rng.choice([0] + list(range(1, hidden_size)) * 2),
        bias=rng.random() < 0.8,
        batch_first=rng.random() < 0.5,
        dropout=rng.choice([0.0, 0.3]),
        gate_activation=rng.choice(["sigmoid", "hard_sigmoid"]),
        cell_activation=rng.choice(["tanh", "relu", "softsign"]),
        peephole=rng.random() < 0.5,
        coupled_gates=rng.random() < 0.4,
        layer_norm=rng.random() < 0.4,
        recurrent_dropout=rng.choice([0.0, 0.3]),
        zoneout=rng.choice([0.0, 0.2, (0.1, 0.4)]),
        weight_drop=rng.choice([0.0, 0.3]),
        cell_clip=rng.choice([None, 0.5]),
        residual=rng.random() < 0.5,
        merge_mode=rng.choice(["concat", "sum", "mean"]) if bidirectional else "concat",
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_combination_with_lengths(seed: int) -> None:
    config = random_combination(random.Random(seed))
    lstm = make_lstm(seed, **config)
    seq_len, lengths = 5, [2, 5, 1, 4]
    x, h0, c0 = inputs(lstm, seq_len=seq_len, batch=4, seed=seed)  # (L, N, H_in)
    to_module = (lambda t: t.transpose(0, 1)) if config["batch_first"] else (lambda t: t)  # (N, L, ...) if batch_first

    # Evaluation: the NumPy equations, one sequence at a time on its real steps only.
    lstm.eval()
    output, (h_n, c_n) = lstm(to_module(x), (h0, c0), lengths=lengths)
    expected = np_lstm(lstm, x, h0, c0, lengths)
    for name, actual, wanted in zip(("output", "h_n", "c_n"), (to_module(output), h_n, c_n), expected):
        np.testing.assert_allclose(actual.detach().numpy(), wanted, rtol=0, atol=1e-10, err_msg=name)
    packed = pack_padded_sequence(to_module(x), lengths, batch_first=config["batch_first"], enforce_sorted=False)
    packed_out, (h_p, c_p) = lstm(packed, (h0, c0))
    padded, _ = pad_packed_sequence(packed_out, batch_first=config["batch_first"], total_length=seq_len)
    assert torch.equal(padded, output) and torch.equal(h_p, h_n) and torch.equal(c_p, c_n)

    # Training: the padding is exactly zero and what it held changes nothing, masks included.
    lstm.train()
    noisy = x.clone()
    for b, length in enumerate(lengths):
        noisy[length:, b] = 1e3 * torch.randn(seq_len - length, config["input_size"], dtype=torch.float64)
    runs = []
    for data in (x, noisy):
        data = to_module(data).requires_grad_()
        torch.manual_seed(seed)
        output, (h_n, c_n) = lstm(data, (h0, c0), lengths=torch.tensor(lengths))
        (output.sum() + h_n.sum() + c_n.sum()).backward()
        runs.append((to_module(output), h_n, c_n, to_module(data.grad)))
    for b, length in enumerate(lengths):
        assert torch.all(runs[0][0][length:, b] == 0), "outputs past a sequence's end must be exactly zero"
        assert torch.all(runs[0][3][length:, b] == 0), "no gradient may reach the padding"
    for clean, dirty in zip(runs[0], runs[1]):
        assert torch.equal(clean, dirty)


# --- Parameters the variants add, and their initialisation ------------------------------------------------


def test_variant_parameter_names_and_shapes() -> None:
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, peephole=True, layer_norm=True, merge_mode="sum")
    shapes = {name: tuple(p.shape) for name, p in lstm.named_parameters()}
    for k, suffix in itertools.product((0, 1), ("", "_reverse")):
        assert shapes[f"weight_ih_l{k}{suffix}"] == (16, 3 if k == 0 else 2)  # merge_mode="sum": H_out in
        assert shapes[f"weight_peephole_l{k}{suffix}"] == (3, 4)
        assert shapes[f"ln_ih_weight_l{k}{suffix}"] == shapes[f"ln_hh_weight_l{k}{suffix}"] == (16,)
        assert shapes[f"ln_c_weight_l{k}{suffix}"] == shapes[f"ln_c_bias_l{k}{suffix}"] == (4,)
    names = list(shapes)
    assert names[:10] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0",
        "weight_peephole_l0", "ln_ih_weight_l0", "ln_hh_weight_l0", "ln_c_weight_l0", "ln_c_bias_l0",
    ]  # fmt: skip
    coupled = LSTM(3, 4, coupled_gates=True, peephole=True)
    assert [(n, tuple(p.shape)) for n, p in coupled.named_parameters()] == [
        ("weight_ih_l0", (12, 3)), ("weight_hh_l0", (12, 4)), ("bias_ih_l0", (12,)), ("bias_hh_l0", (12,)),
        ("weight_peephole_l0", (2, 4)),
    ]  # fmt: skip


@pytest.mark.parametrize("init", ["default", "torch"])
def test_variant_parameters_initialisation(init: str) -> None:
    torch.manual_seed(0)
    lstm = LSTM(3, 4, peephole=True, layer_norm=True, init=init)
    for name, p in lstm.named_parameters():
        if name.startswith(("weight_peephole", "ln_c_bias")):
            assert torch.equal(p, torch.zeros_like(p)), name
        elif name.startswith("ln_"):
            assert torch.equal(p, torch.ones_like(p)), name
    if init == "torch":  # the parameters torch.nn.LSTM has are drawn as it draws them
        torch.manual_seed(0)
        theirs = nn.LSTM(3, 4)
        for name, p in theirs.named_parameters():
            assert torch.equal(getattr(lstm, name), p), name


@pytest.mark.parametrize("forget_bias", [1.0, 2.0])
def test_coupled_gates_default_init_starts_the_forget_gate_at_forget_bias(forget_bias: float) -> None:
    lstm = LSTM(3, 4, coupled_gates=True, forget_bias=forget_bias)
    expected = torch.zeros(12)
    expected[:4] = -forget_bias  # input gate: f = 1 - sigmoid(-b) = sigmoid(b)
    assert torch.equal(lstm.bias_ih_l0, expected)
    assert torch.equal(lstm.bias_hh_l0, torch.zeros(12))
    for block in lstm.weight_hh_l0.split(4):  # 3 gate blocks, each orthogonal
        assert torch.allclose(block.T @ block, torch.eye(4), atol=1e-5)


def test_extra_repr_names_the_variants() -> None:
    text = repr(LSTM(3, 4, num_layers=2, bidirectional=True, zoneout=0.1, cell_clip=2, merge_mode="mean"))
    assert text == "LSTM(3, 4, num_layers=2, bidirectional=True, zoneout=0.1, cell_clip=2.0, merge_mode='mean')"
    assert repr(LSTM(3, 4, zoneout=(0.1, 0.2))) == "LSTM(3, 4, zoneout=(0.1, 0.2))"


def test_unbatched_input_with_variants() -> None:
    lstm = make_lstm(16, num_layers=2, peephole=True, layer_norm=True, zoneout=0.2, residual=True).eval()
    x, h0, c0 = inputs(lstm, seq_len=3, batch=1, seed=16)
    output, (h_n, c_n) = lstm(x[:, 0], (h0[:, 0], c0[:, 0]))  # (L, H_in), (num_layers, H)
    batched, (h_b, c_b) = lstm(x, (h0, c0))
    assert torch.equal(output, batched[:, 0]) and torch.equal(h_n, h_b[:, 0]) and torch.equal(c_n, c_b[:, 0])
