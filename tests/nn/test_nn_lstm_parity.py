"""lstmkit.nn.LSTM against torch.nn.LSTM on copied weights, and its two paths against each other."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import lstmkit.nn.fast
import lstmkit.nn.fused
import lstmkit.nn.layer
from lstmkit.nn import LSTM

TOL = 1e-5
IMPLS = ["reference", "fused"]
MODES = ["padded", "unbatched", "lengths", "packed"]


def make_pair(seed: int, impl: str, **config) -> tuple[nn.LSTM, LSTM]:
    torch.manual_seed(seed)
    theirs = nn.LSTM(**config)
    ours = LSTM(**config, impl=impl)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def random_config(rng: random.Random) -> dict:
    hidden_size = rng.randint(2, 6)
    return dict(
        input_size=rng.randint(1, 5),
        hidden_size=hidden_size,
        num_layers=rng.randint(1, 3),
        bias=rng.random() < 0.8,
        batch_first=rng.random() < 0.5,
        bidirectional=rng.random() < 0.5,
        proj_size=rng.choice([0, rng.randint(1, hidden_size - 1)]),
    )


def make_inputs(config: dict, mode: str, with_hx: bool, seed: int):
    """Input, initial state and lengths for ``mode``; every tensor is a fresh leaf that requires grad."""
    gen = torch.Generator().manual_seed(seed)
    batch, seq_len = 4, 5
    states = config["num_layers"] * (2 if config["bidirectional"] else 1)
    out_size = config["proj_size"] or config["hidden_size"]
    if mode == "unbatched":
        x = torch.randn(seq_len, config["input_size"], generator=gen)
        h_shape, c_shape = (states, out_size), (states, config["hidden_size"])
    else:
        shape = (batch, seq_len) if config["batch_first"] else (seq_len, batch)
        x = torch.randn(*shape, config["input_size"], generator=gen)
        h_shape, c_shape = (states, batch, out_size), (states, batch, config["hidden_size"])
    hx = (torch.randn(h_shape, generator=gen), torch.randn(c_shape, generator=gen)) if with_hx else None
    # Unsorted on purpose, with one full-length sequence and one of length 1.
    lengths = torch.tensor([2, seq_len, 1, 4]) if mode in ("lengths", "packed") else None
    return x, hx, lengths


def run(module: nn.Module, x, hx, lengths, mode: str, batch_first: bool, use_lengths_arg: bool):
    """Forward through ``module``; returns padded output, h_n, c_n and the leaves to differentiate by."""
    x = x.clone().requires_grad_()
    leaves = [x]
    if hx is not None:
        hx = tuple(s.clone().requires_grad_() for s in hx)
        leaves += list(hx)
    if mode == "packed" or (mode == "lengths" and not use_lengths_arg):
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        packed_out, (h_n, c_n) = module(packed, hx)
        assert isinstance(packed_out, PackedSequence)
        assert torch.equal(packed_out.batch_sizes, packed.batch_sizes)
        assert torch.equal(packed_out.sorted_indices, packed.sorted_indices)
        total = x.size(1 if batch_first else 0)
        output, _ = pad_packed_sequence(packed_out, batch_first=batch_first, total_length=total)
    elif mode == "lengths":
        output, (h_n, c_n) = module(x, hx, lengths=lengths)
    else:
        output, (h_n, c_n) = module(x, hx)
    return output, h_n, c_n, leaves


def backward(module: nn.Module, output, h_n, c_n, leaves, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1000)
    weights = torch.randn(output.shape, generator=gen)
    loss = (output * weights).sum() + h_n.sum() + c_n.sum()
    grads = torch.autograd.grad(loss, list(module.parameters()) + leaves)
    names = [name for name, _ in module.named_parameters()] + [f"leaf{i}" for i in range(len(leaves))]
    return dict(zip(names, grads))


def assert_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].shape == expected[name].shape, f"{what} {name}"
        diff = (actual[name] - expected[name]).abs().max().item()
        assert diff <= TOL, f"{what} {name}: max abs diff {diff}"


def check_parity(config: dict, impl: str, mode: str, with_hx: bool, seed: int) -> None:
    theirs, ours = make_pair(seed, impl, **config)
    assert ours.fused == (impl == "fused")
    x, hx, lengths = make_inputs(config, mode, with_hx, seed)
    batch_first = config["batch_first"]

    expected = run(theirs, x, hx, lengths, mode, batch_first, use_lengths_arg=False)
    actual = run(ours, x, hx, lengths, mode, batch_first, use_lengths_arg=True)

    out_names = ("output", "h_n", "c_n")
    assert_close(dict(zip(out_names, actual[:3])), dict(zip(out_names, expected[:3])), f"{mode} forward")
    assert_close(backward(ours, *actual, seed), backward(theirs, *expected, seed), f"{mode} gradient")

    if mode == "lengths":
        output = actual[0] if batch_first else actual[0].transpose(0, 1)  # (N, L, D * H_out)
        for b, length in enumerate(lengths.tolist()):
            assert torch.all(output[b, length:] == 0), "outputs past a sequence's end must be exactly zero"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_parity_random_configs(impl: str, mode: str, seed: int) -> None:
    rng = random.Random(f"{mode}-{seed}")
    config = random_config(rng)
    check_parity(config, impl, mode, with_hx=rng.random() < 0.5, seed=seed)


# The random draws above may miss a combination; these cover the ones that matter on purpose.
COVERED = [
    dict(input_size=3, hidden_size=4, num_layers=1, bias=True, batch_first=False, bidirectional=False, proj_size=0),
    dict(input_size=3, hidden_size=4, num_layers=2, bias=True, batch_first=True, bidirectional=True, proj_size=0),
    dict(input_size=2, hidden_size=5, num_layers=3, bias=True, batch_first=False, bidirectional=True, proj_size=3),
    dict(input_size=4, hidden_size=3, num_layers=2, bias=False, batch_first=True, bidirectional=False, proj_size=2),
]


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("config", COVERED, ids=["plain", "bidir-batch_first", "bidir-proj-3layers", "nobias-proj"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_parity_covered_configs(impl: str, mode: str, config: dict, with_hx: bool) -> None:
    check_parity(config, impl, mode, with_hx, seed=7)


@pytest.mark.parametrize("seed", range(3))
def test_reference_and_fused_agree(seed: int) -> None:
    config = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, proj_size=2, batch_first=True)
    _, reference = make_pair(seed, "reference", **config)
    _, fused = make_pair(seed, "fused", **config)
    assert not reference.fused and fused.fused
    x, hx, lengths = make_inputs({**config, "bias": True}, "lengths", with_hx=True, seed=seed)
    results = {}
    for name, module in (("reference", reference), ("fused", fused)):
        output, h_n, c_n, leaves = run(module, x, hx, lengths, "lengths", True, use_lengths_arg=True)
        results[name] = ({"output": output, "h_n": h_n, "c_n": c_n}, backward(module, output, h_n, c_n, leaves, seed))
    assert_close(results["reference"][0], results["fused"][0], "forward")
    assert_close(results["reference"][1], results["fused"][1], "gradient")


@pytest.mark.parametrize("impl", IMPLS)
def test_padding_never_leaks(impl: str) -> None:
    """Whatever sits past a sequence's end changes neither the outputs nor the final states."""
    torch.manual_seed(0)
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, impl=impl)
    lengths = [3, 6, 1]
    x = torch.randn(6, 3, 3)
    noisy = x.clone()
    for b, length in enumerate(lengths):
        noisy[length:, b] = 1e3 * torch.randn(6 - length, 3)
    clean_out, (clean_h, clean_c) = lstm(x, lengths=lengths)
    noisy_out, (noisy_h, noisy_c) = lstm(noisy, lengths=torch.tensor(lengths))
    assert torch.equal(clean_out, noisy_out)
    assert torch.equal(clean_h, noisy_h)
    assert torch.equal(clean_c, noisy_c)


@pytest.mark.parametrize("impl", IMPLS)
def test_full_lengths_equal_no_lengths(impl: str) -> None:
    torch.manual_seed(1)
    lstm = LSTM(2, 3, bidirectional=True, impl=impl)
    x = torch.randn(4, 2, 2)
    output, (h_n, c_n) = lstm(x)
    output_l, (h_l, c_l) = lstm(x, lengths=[4, 4])
    assert torch.equal(output, output_l) and torch.equal(h_n, h_l) and torch.equal(c_n, c_l)


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_between_layers_only(impl: str) -> None:
    """dropout=1 zeroes the input of layer 2, never the last layer's output, and only in training."""
    torch.manual_seed(2)
    # init="torch" gives non-zero biases, so that layer 2 has a non-zero output even on a zero input.
    lstm = LSTM(3, 4, num_layers=2, dropout=1.0, impl=impl, init="torch")
    second = LSTM(4, 4, impl="reference")
    second.load_state_dict({name.replace("l1", "l0"): p for name, p in lstm.state_dict().items() if "l1" in name})
    x = torch.randn(5, 2, 3)

    output, _ = lstm.train()(x)
    expected, _ = second(torch.zeros(5, 2, 4))
    assert expected.abs().min() > 1e-3
    assert (output - expected).abs().max().item() <= TOL

    theirs = nn.LSTM(3, 4, num_layers=2, dropout=1.0).eval()
    theirs.load_state_dict(lstm.state_dict())
    eval_output, _ = lstm.eval()(x)
    assert (eval_output - theirs(x)[0]).abs().max().item() <= TOL


def test_auto_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    spied = ((lstmkit.nn.fused, "fused_lstm"), (lstmkit.nn.fast, "fast_lstm"), (lstmkit.nn.layer, "reference_lstm"))
    for module, name in spied:
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    x = torch.randn(3, 2, 4)

    vanilla = LSTM(4, 3)
    assert vanilla.fused and vanilla.backend == "fused"
    vanilla(x)
    assert calls == ["fused_lstm"]

    calls.clear()
    relu = LSTM(4, 3, cell_activation="relu", hidden_activation="relu")
    assert not relu.fused and relu.backend == "fast"  # PyTorch's kernel has tanh only; lstmkit's has relu
    relu(x)
    assert calls == ["fast_lstm"]

    calls.clear()
    forced = LSTM(4, 3, impl="reference")
    assert not forced.fused and forced.backend == "reference"
    forced(x)
    assert calls == ["reference_lstm"]


def test_from_torch_and_to_torch_round_trip() -> None:
    torch.manual_seed(3)
    theirs = nn.LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=True, proj_size=2, dropout=0.25).eval()
    ours = LSTM.from_torch(theirs)
    assert not ours.training
    config = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size")
    for attr in config:
        assert getattr(ours, attr) == getattr(theirs, attr)
    back = ours.to_torch()
    assert isinstance(back, nn.LSTM) and not back.training
    assert back.state_dict().keys() == theirs.state_dict().keys()
    for name, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[name], value)
        assert torch.equal(ours.state_dict()[name], value)
    x = torch.randn(2, 4, 3)
    assert torch.equal(ours(x)[0], theirs(x)[0])


def test_to_torch_refuses_other_activations() -> None:
    with pytest.raises(ValueError, match=r"to_torch.*cell_activation='relu'"):
        LSTM(3, 4, cell_activation="relu").to_torch()


def test_extra_repr() -> None:
    text = repr(LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, hidden_activation="relu"))
    assert text == "LSTM(3, 5, proj_size=2, num_layers=2, bidirectional=True, hidden_activation='relu')"
