"""The fast kernel (lstmkit.nn.fast) against the reference loop, forward and backward, for every variant; its
float64 gradient checks; dispatch and the fallback when it cannot be built; the streaming step."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit.nn.fast
import lstmkit.nn.layer
from lstmkit.errors import ShapeError
from lstmkit.nn import ACTIVATIONS, LSTM
from lstmkit.nn import fast

TOL = 1e-5  # float32, on outputs and gradients


@pytest.fixture(scope="module", autouse=True)
def kernel():
    """Build the kernel once for this module (seconds on a machine's first run; cached on disk after)."""
    assert fast.available(), f"the fast kernel must build here: {fast._state.get('error')}"


def make_pair(seed: int, dtype=torch.float32, **config) -> tuple[LSTM, LSTM]:
    """The same LSTM twice, ``impl="reference"`` and ``impl="fast"``, with non-trivial values in every
    parameter (the variants' own start at 0 or 1, which would hide a missing term)."""
    torch.manual_seed(seed)
    reference = LSTM(init="torch", impl="reference", dtype=dtype, **config)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.startswith("weight_peephole"):
                p.copy_(0.5 * torch.randn_like(p))
            elif name.startswith("ln_") and "weight" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.startswith("ln_"):
                p.copy_(0.3 * torch.randn_like(p))
    fast_lstm = LSTM(init="torch", impl="fast", dtype=dtype, **config)
    fast_lstm.load_state_dict(reference.state_dict())
    assert reference.backend == "reference" and fast_lstm.backend == "fast"
    return reference, fast_lstm


VARIANTS = {
    "vanilla": {},
    "relu": dict(cell_activation="relu", hidden_activation="relu"),
    "hard_sigmoid-elu-softsign": dict(gate_activation="hard_sigmoid", cell_activation="elu", hidden_activation="softsign"),
    "peephole": dict(peephole=True),
    "coupled_gates": dict(coupled_gates=True),
    "peephole+coupled_gates": dict(peephole=True, coupled_gates=True),
    "layer_norm": dict(layer_norm=True),
    "cell_clip": dict(cell_clip=0.4),
    "zoneout": dict(zoneout=(0.2, 0.4)),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "weight_drop": dict(weight_drop=0.3),
    "everything": dict(
        peephole=True, coupled_gates=True, layer_norm=True, cell_clip=0.8, zoneout=(0.1, 0.3), recurrent_dropout=0.2,
        weight_drop=0.2, gate_activation="hard_sigmoid", cell_activation="softsign",
    ),
}

STRUCTURES = {
    "1-layer": dict(input_size=5, hidden_size=8),
    "proj": dict(input_size=5, hidden_size=8, proj_size=3),
    "bidirectional-2-layers": dict(input_size=5, hidden_size=8, num_layers=2, bidirectional=True, dropout=0.3),
    "bidirectional-proj-residual-sum": dict(
        input_size=3, hidden_size=6, num_layers=3, bidirectional=True, proj_size=3, residual=True, merge_mode="sum",
        batch_first=True,
    ),
}


def run(module: LSTM, x, hx, lengths, seed: int, loss_dtype=None):
    """Forward and backward with the masks of ``seed``, through a random linear loss (drawn in ``loss_dtype``,
    default the module's); returns the outputs and every gradient by name."""
    x = x.clone().requires_grad_()
    hx = tuple(s.clone().requires_grad_() for s in hx)
    torch.manual_seed(seed)
    output, (h_n, c_n) = module(x, hx, lengths=lengths)
    gen = torch.Generator().manual_seed(seed)
    loss = sum(
        (t * torch.randn(t.shape, generator=gen, dtype=loss_dtype or t.dtype).to(t.dtype)).sum()
        for t in (output, h_n, c_n)
    )
    names = [name for name, _ in module.named_parameters()] + ["x", "h_0", "c_0"]
    grads = torch.autograd.grad(loss, list(module.parameters()) + [x, *hx])
    return {"output": output, "h_n": h_n, "c_n": c_n, **dict(zip(names, grads))}


def inputs(module: LSTM, seq_len: int, batch: int, seed: int, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, seq_len) if module.batch_first else (seq_len, batch)
    x = torch.randn(*shape, module.input_size, generator=gen, dtype=dtype)
    states = module.num_layers * module.num_directions
    h0 = torch.randn(states, batch, module.output_size, generator=gen, dtype=dtype)
    c0 = torch.randn(states, batch, module.hidden_size, generator=gen, dtype=dtype)
    return x, (h0, c0)


def assert_all_close(actual: dict, expected: dict, tol: float, what: str) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=tol, rtol=tol, msg=lambda m: f"{what} {name}: {m}")


# --- Forward and backward equal the reference loop ------------------------------------------------------


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_equals_reference(variant: str, structure: str, with_lengths: bool) -> None:
    """float64, so that any difference beyond rounding is a bug; training (the same masks) and evaluation."""
    reference, fast_lstm = make_pair(0, dtype=torch.float64, **STRUCTURES[structure], **VARIANTS[variant])
    x, hx = inputs(reference, seq_len=6, batch=4, seed=1, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 5, 1]) if with_lengths else None
    for training in (True, False):
        reference.train(training)
        fast_lstm.train(training)
        expected = run(reference, x, hx, lengths, seed=2)
        actual = run(fast_lstm, x, hx, lengths, seed=2)
        assert_all_close(actual, expected, 1e-10, "training" if training else "evaluation")


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("structure", ["1-layer", "bidirectional-proj-residual-sum"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_float32_is_as_accurate_as_the_reference(variant: str, structure: str, with_lengths: bool) -> None:
    """float32 against the float64 truth: within 1e-5 of it (relative to the tensor's scale where that is
    above 1), or within twice the reference's own float32 error where that is larger (layer norm's gradients
    reach ~50 here, and float32 rounding alone then moves them by ~1e-4 on either path)."""
    config = {**STRUCTURES[structure], **VARIANTS[variant]}
    truth_module, _ = make_pair(0, dtype=torch.float64, **config)
    reference, fast_lstm = make_pair(0, **config)
    for module in (reference, fast_lstm):
        module.load_state_dict({name: t.float() for name, t in truth_module.state_dict().items()})
    x, hx = inputs(truth_module, seq_len=6, batch=4, seed=1, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 5, 1]) if with_lengths else None
    truth = run(truth_module.eval(), x, hx, lengths, seed=2)
    x32, hx32 = x.float(), tuple(s.float() for s in hx)
    expected = run(reference.eval(), x32, hx32, lengths, seed=2, loss_dtype=torch.float64)
    actual = run(fast_lstm.eval(), x32, hx32, lengths, seed=2, loss_dtype=torch.float64)
    for name, wanted in truth.items():
        scale = max(1.0, wanted.abs().max().item())
        reference_error = (expected[name].double() - wanted).abs().max().item()
        error = (actual[name].double() - wanted).abs().max().item()
        assert error <= max(TOL * scale, 2 * reference_error), f"{name}: {error:.2e} (reference: {reference_error:.2e})"


def test_fast_equals_reference_on_packed_input() -> None:
    reference, fast_lstm = make_pair(3, input_size=4, hidden_size=6, num_layers=2, bidirectional=True,
                                     peephole=True, layer_norm=True)  # fmt: skip
    x, hx = inputs(reference, seq_len=5, batch=3, seed=4)
    lengths = [3, 5, 2]
    results = []
    for module in (reference, fast_lstm):
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        output, (h_n, c_n) = module(packed, hx)
        padded, _ = pad_packed_sequence(output, total_length=5)
        results.append((padded, h_n, c_n))
    for actual, expected in zip(*results):
        torch.testing.assert_close(actual, expected, atol=TOL, rtol=TOL)


def test_fast_at_a_realistic_size() -> None:
    """Batch and hidden size large enough for the kernel's multi-threaded row loop."""
    reference, fast_lstm = make_pair(5, input_size=16, hidden_size=64, peephole=True, layer_norm=True)
    x, hx = inputs(reference, seq_len=5, batch=96, seed=6)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        expected = run(reference, x, hx, None, seed=7)
        actual = run(fast_lstm, x, hx, None, seed=7)
    finally:
        torch.set_num_threads(threads)
    assert_all_close(actual, expected, 1e-4, "N=96, H=64")  # sums over 96 rows and 64 units


# --- Gradient checks of the hand-written backward, float64 --------------------------------------------------

GRADCHECK = {
    "vanilla": {},
    "peephole": dict(peephole=True),
    "peephole+coupled_gates": dict(peephole=True, coupled_gates=True, gate_activation="hard_sigmoid"),
    "layer_norm": dict(layer_norm=True),
    "cell_clip": dict(cell_clip=0.3),
    "zoneout-eval": dict(zoneout=(0.3, 0.5)),
    "zoneout-train": dict(zoneout=(0.3, 0.5)),
    "recurrent_dropout-train": dict(recurrent_dropout=0.4),
    "weight_drop-train": dict(weight_drop=0.4),
    "elu-softsign": dict(cell_activation="elu", hidden_activation="softsign"),
    "relu": dict(cell_activation="relu", hidden_activation="relu"),
    "bidirectional-proj-everything-train": dict(
        num_layers=2, bidirectional=True, peephole=True, layer_norm=True, cell_clip=0.5, zoneout=0.2,
        recurrent_dropout=0.2, residual=True, merge_mode="mean",
    ),
}


@pytest.mark.parametrize("variant", GRADCHECK)
def test_gradcheck(variant: str) -> None:
    config = GRADCHECK[variant]
    stacked = config.get("num_layers", 1) > 1  # smaller, to keep the number of parameters down
    _, lstm = make_pair(10, dtype=torch.float64, input_size=2, hidden_size=2 if stacked else 3,
                        proj_size=1 if stacked else 2, **config)  # fmt: skip
    lstm.train(variant.endswith("-train"))
    names, params = zip(*lstm.named_parameters())
    x, (h0, c0) = inputs(lstm, seq_len=3, batch=2, seed=11, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (2.0 * x, h0, c0)]

    def function(x, h0, c0, *params):
        torch.manual_seed(0)  # the same masks at every evaluation
        output, (h_n, c_n) = functional_call(lstm, dict(zip(names, params)), (x, (h0, c0)), {"lengths": [3, 2]})
        return output, h_n, c_n

    assert gradcheck(function, (*leaves, *params), fast_mode=True)


# --- Dispatch ----------------------------------------------------------------------------------------------


def test_backend_names_the_path() -> None:
    assert LSTM(3, 4).backend == "fused" and LSTM(3, 4).fused
    assert LSTM(3, 4, peephole=True).backend == "fast"
    assert not LSTM(3, 4, peephole=True).fused
    assert LSTM(3, 4, cell_activation="relu").backend == "fast"
    assert LSTM(3, 4, impl="fast").backend == "fast"  # the kernel computes the vanilla LSTM too
    assert LSTM(3, 4, layer_norm=True, impl="reference").backend == "reference"
    bfloat16 = LSTM(3, 4, peephole=True, init="torch", dtype=torch.bfloat16)
    assert bfloat16.backend == "reference"  # the kernel has no bfloat16


def test_auto_runs_the_kernel_for_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    for module, name in ((lstmkit.nn.fast, "fast_lstm"), (lstmkit.nn.layer, "reference_lstm")):
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    x = torch.randn(3, 2, 4)
    LSTM(4, 3, zoneout=0.1)(x)
    LSTM(4, 3, zoneout=0.1, impl="reference")(x)
    LSTM(4, 3, zoneout=0.1, init="torch", dtype=torch.bfloat16)(x.bfloat16())
    assert calls == ["fast_lstm", "reference_lstm", "reference_lstm"]


def test_an_activation_without_kernel_code_takes_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ACTIVATIONS, "silu", F.silu)
    assert LSTM(3, 4, cell_activation="silu").backend == "reference"
    with pytest.raises(ValueError, match=r"impl='fast'.*cell_activation='silu'"):
        LSTM(3, 4, cell_activation="silu", impl="fast")


@pytest.mark.slow
def test_importing_and_vanilla_use_build_nothing() -> None:
    code = (
        "import torch, lstmkit, lstmkit.nn; from lstmkit.nn import LSTM, fast; "
        "LSTM(3, 4)(torch.randn(2, 1, 3)); LSTM(3, 4).step(torch.randn(3)); "
        "assert fast._state == {}, fast._state; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


# --- When the kernel cannot be built -----------------------------------------------------------------------


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch):
    """A fresh state in which building fails the way it does without a compiler."""
    monkeypatch.setattr(fast, "_state", {})

    def failing_build():
        raise fast.FastPathUnavailable("no C++ compiler found (set CXX, or install g++ or clang++)")

    monkeypatch.setattr(fast, "build", failing_build)


def test_build_failure_falls_back_to_the_reference_with_one_warning(no_kernel) -> None:
    torch.manual_seed(0)
    lstm = LSTM(3, 4, peephole=True, layer_norm=True)
    reference = LSTM(3, 4, peephole=True, layer_norm=True, impl="reference")
    reference.load_state_dict(lstm.state_dict())
    x = torch.randn(5, 2, 3)
    with pytest.warns(UserWarning, match=r"fast LSTM path unavailable \(no C\+\+ compiler found.*reference loop") as record:
        output = lstm(x)[0]
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        assert lstm.backend == "reference"
        assert torch.equal(output, reference(x)[0])
        assert torch.equal(lstm(x)[0], output)
        stream = lstm.eval().stream()
        assert stream.backend == "reference"
        torch.testing.assert_close(stream.step(x[0, 0]), reference.eval()(x[:1, 0])[0][0])


def test_a_failing_compiler_is_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The real builder with a compiler that fails: the module still runs, on the reference loop."""
    monkeypatch.setattr(fast, "_state", {})
    monkeypatch.setenv("CXX", "false")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match=r"fast LSTM path unavailable \(false could not compile lstm_fast.cpp"):
        assert LSTM(3, 4, zoneout=0.2).backend == "reference"
    assert not list(tmp_path.rglob("*.so")), "no half-built library may be left behind"


# --- Streaming ---------------------------------------------------------------------------------------------

STREAM_VARIANTS = {
    "vanilla": {},
    "proj-3-layers": dict(num_layers=3, proj_size=3, input_size=3),
    "everything": dict(
        num_layers=2, proj_size=3, input_size=3, residual=True, peephole=True, coupled_gates=True, layer_norm=True,
        cell_clip=0.5, zoneout=(0.1, 0.3), recurrent_dropout=0.3, weight_drop=0.3, dropout=0.5,
        gate_activation="hard_sigmoid", cell_activation="elu", hidden_activation="softsign",
    ),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", STREAM_VARIANTS)
def test_stream_equals_forward(variant: str, dtype) -> None:
    config = {"input_size": 4, "hidden_size": 5, **STREAM_VARIANTS[variant]}
    reference, lstm = make_pair(12, dtype=dtype, **config)
    reference.eval()
    lstm.eval()
    x, (h0, c0) = inputs(lstm, seq_len=6, batch=2, seed=13, dtype=dtype)
    output, (h_n, c_n) = reference(x, (h0, c0))
    tol = 1e-12 if dtype == torch.float64 else TOL
    batched = lstm.stream(batch_size=2)
    assert batched.backend == "fast"
    batched.reset((h0, c0))
    unbatched = lstm.stream()
    unbatched.reset((h0[:, 1], c0[:, 1]))
    for t in range(6):
        torch.testing.assert_close(batched.step(x[t]), output[t], atol=tol, rtol=tol)
        torch.testing.assert_close(unbatched.step(x[t, 1]), output[t, 1], atol=tol, rtol=tol)
    torch.testing.assert_close(batched.state[0], h_n, atol=tol, rtol=tol)
    torch.testing.assert_close(batched.state[1], c_n, atol=tol, rtol=tol)
    torch.testing.assert_close(unbatched.state[1], c_n[:, 1], atol=tol, rtol=tol)


@pytest.mark.parametrize("variant", STREAM_VARIANTS)
def test_step_without_autograd_equals_the_reference_step(variant: str) -> None:
    config = {"input_size": 4, "hidden_size": 5, **STREAM_VARIANTS[variant]}
    reference, lstm = make_pair(14, dtype=torch.float64, **config)
    x, (h0, c0) = inputs(lstm, seq_len=4, batch=3, seed=15, dtype=torch.float64)
    h0_before = h0.clone()
    states = {"reference": (h0, c0), "fast": (h0, c0)}
    with torch.no_grad():
        for t in range(4):
            h_ref, states["reference"] = reference.eval().step(x[t], states["reference"])
            h_fast, states["fast"] = lstm.eval().step(x[t], states["fast"])
            torch.testing.assert_close(h_fast, h_ref, atol=1e-12, rtol=0)
    for actual, expected in zip(states["fast"], states["reference"]):
        torch.testing.assert_close(actual, expected, atol=1e-12, rtol=0)
    assert torch.equal(h0, h0_before), "step must not modify the state it is given"


def test_stream_sees_in_place_parameter_updates() -> None:
    lstm = LSTM(3, 4, peephole=True).eval()
    stream = lstm.stream()
    x = torch.randn(3)
    before = stream.step(x).clone()
    with torch.no_grad():
        lstm.weight_ih_l0.mul_(2.0)
    stream.reset()
    after = stream.step(x).clone()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, lstm(x.unsqueeze(0))[0][0], atol=TOL, rtol=TOL)


def test_stream_errors() -> None:
    with pytest.raises(ValueError, match="LSTM.stream: expected a unidirectional LSTM, got bidirectional=True"):
        LSTM(3, 4, bidirectional=True).stream()
    with pytest.raises(ValueError, match="batch_size: expected None .* got 0"):
        LSTM(3, 4).stream(batch_size=0)
    stream = LSTM(3, 4).eval().stream(batch_size=2)
    with pytest.raises(ShapeError, match=r"LSTMStream.step: expected x_t of shape \(2, 3\), got \(3,\)"):
        stream.step(torch.randn(3))
    with pytest.raises(ValueError, match="expected x_t of dtype torch.float32, got torch.float64"):
        stream.step(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"LSTMStream.reset: expected h of shape \(1, 2, 4\), got \(1, 4\)"):
        stream.reset((torch.zeros(1, 4), torch.zeros(1, 2, 4)))


def test_stream_accepts_a_non_contiguous_input() -> None:
    lstm = LSTM(3, 4, layer_norm=True).eval()
    x = torch.randn(3, 2).t()  # (2, 3), not contiguous
    stream = lstm.stream(batch_size=2)
    torch.testing.assert_close(stream.step(x), lstm(x.unsqueeze(0))[0][0], atol=TOL, rtol=TOL)


def test_vanilla_auto_runs_variable_lengths_on_the_fast_kernel_and_matches_torch():
    """PyTorch's CPU kernel runs packed batches ~10x slower; auto sends lengths to the fast kernel instead."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if not fast.available():
        pytest.skip("the fast kernel cannot be built here")
    torch.manual_seed(0)
    ours = LSTM(3, 8, num_layers=2, batch_first=True, bidirectional=True)
    ref = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True, bidirectional=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 9, 3, requires_grad=True)
    lengths = torch.tensor([9, 4, 7, 1])
    assert ours.backend == "fused" and ours.choose_backend(x, lengths=True).name == "fast"
    calls = []
    original = fast.fast_lstm
    try:
        fast.fast_lstm = lambda *a, **k: calls.append(1) or original(*a, **k)
        out, (h, c) = ours(x, lengths=lengths)
    finally:
        fast.fast_lstm = original
    assert calls, "the fast kernel did not run"
    packed, (h_ref, c_ref) = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out_ref, _ = pad_packed_sequence(packed, batch_first=True, total_length=9)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, c_ref, atol=1e-5, rtol=1e-5)
    grad, = torch.autograd.grad(out.sum() + h.sum(), x)
    grad_ref, = torch.autograd.grad(out_ref.sum() + h_ref.sum(), x)
    torch.testing.assert_close(grad, grad_ref, atol=1e-5, rtol=1e-5)
