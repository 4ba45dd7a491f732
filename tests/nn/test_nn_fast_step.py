"""LSTM.step's cached fast path (lstmkit.nn.fast_step) against the reference step: every variant the streaming
kernel covers, float64 and float32, the state left untouched, parameters changed in place or replaced seen
by the next step, every call the cache must not answer sent to the full path, and LSTM.stream covering the
same variants."""

from __future__ import annotations

import itertools
import runpy
import threading
from pathlib import Path

import pytest
import torch

import lstmkit.nn.layer
import lstmkit.nn.lstm
from lstmkit.errors import ShapeError
from lstmkit.nn import LSTM, fast
from lstmkit.nn.fast_step import FastStep

TOL64 = 1e-12
TOL32 = 1e-5

# Every variant and structure the streaming kernel computes (all but bidirectional, which cannot stream).
STEP_VARIANTS = {
    "vanilla": {},
    "layer_norm": {"layer_norm": True},
    "peephole": {"peephole": True},
    "coupled_gates": {"coupled_gates": True, "peephole": True},
    "cell_clip": {"cell_clip": 0.3},
    "zoneout": {"zoneout": (0.2, 0.4)},
    "dropout-like, in evaluation": {"recurrent_dropout": 0.3, "weight_drop": 0.3, "num_layers": 2, "dropout": 0.5},
    "activations": {"gate_activation": "hard_sigmoid", "cell_activation": "elu", "hidden_activation": "softsign"},
    "relu": {"cell_activation": "relu", "hidden_activation": "relu"},
    "proj-3-layers-residual": {"num_layers": 3, "proj_size": 3, "residual": True},
    "everything": {
        "num_layers": 2, "proj_size": 3, "residual": True, "peephole": True, "coupled_gates": True,
        "layer_norm": True, "cell_clip": 0.5, "zoneout": (0.1, 0.3), "recurrent_dropout": 0.3, "weight_drop": 0.3,
        "dropout": 0.5, "gate_activation": "hard_sigmoid", "cell_activation": "elu", "hidden_activation": "softsign",
    },
}


@pytest.fixture(scope="module", autouse=True)
def kernel():
    assert fast.available(), f"the fast kernel must build here: {fast._state.get('error')}"


def make_pair(seed: int, dtype=torch.float64, **config) -> tuple[LSTM, LSTM]:
    """The same LSTM with ``impl="reference"`` and ``impl="auto"``, in evaluation mode, every parameter
    non-trivial (peepholes and layer-norm gains would otherwise start at 0 and 1)."""
    torch.manual_seed(seed)
    config = {"input_size": 4, "hidden_size": 5, **config}
    reference = LSTM(init="torch", impl="reference", dtype=dtype, **config).eval()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.startswith(("weight_peephole", "ln_")):
                p.copy_((1.0 if "weight" in name and name.startswith("ln_") else 0.0) + 0.4 * torch.randn_like(p))
    lstm = LSTM(init="torch", dtype=dtype, **config).eval()
    lstm.load_state_dict(reference.state_dict())
    return reference, lstm


def reference_steps(reference: LSTM, xs, state):
    """The reference step over ``xs``: every output and the last state."""
    outputs = []
    with torch.no_grad():
        for x_t in xs:
            h_t, state = reference.step(x_t, state)
            outputs.append(h_t)
    return outputs, state


@pytest.fixture
def no_reference_step(monkeypatch: pytest.MonkeyPatch):
    """Make the reference step fail, to prove a call took the kernel."""

    def fail(*args, **kwargs):
        raise AssertionError("the reference step ran")

    monkeypatch.setattr(lstmkit.nn.lstm._layer, "step_lstm", fail)


@pytest.mark.parametrize("variant", STEP_VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_step_equals_the_reference_step_for_every_variant(variant: str, dtype, monkeypatch) -> None:
    reference, lstm = make_pair(3, dtype=dtype, **STEP_VARIANTS[variant])
    gen = torch.Generator().manual_seed(4)
    xs = torch.randn(5, 3, 4, generator=gen, dtype=dtype)
    h0 = torch.randn(lstm.num_layers, 3, lstm.output_size, generator=gen, dtype=dtype)
    c0 = torch.randn(lstm.num_layers, 3, lstm.hidden_size, generator=gen, dtype=dtype)
    tol = TOL64 if dtype == torch.float64 else TOL32
    full_path_calls = []
    run = FastStep.run
    monkeypatch.setattr(FastStep, "run", lambda *args: full_path_calls.append(1) or run(*args))
    for start in (None, (h0, c0)):
        expected, expected_state = reference_steps(reference, xs, start)
        expected_unbatched, expected_unbatched_state = reference_steps(
            reference, xs[:, 1], None if start is None else (h0[:, 1], c0[:, 1])
        )
        with monkeypatch.context() as patch:
            patch.setattr(lstmkit.nn.lstm._layer, "step_lstm", None)  # any reference step would fail
            state, unbatched_state = start, None if start is None else (h0[:, 1], c0[:, 1])
            with torch.no_grad():
                for t, x_t in enumerate(xs):
                    h_t, state = lstm.step(x_t, state)
                    torch.testing.assert_close(h_t, expected[t], atol=tol, rtol=tol)
                    h_t, unbatched_state = lstm.step(x_t[1], unbatched_state)
                    torch.testing.assert_close(h_t, expected_unbatched[t], atol=tol, rtol=tol)
        for actual, wanted in zip(state + unbatched_state, expected_state + expected_unbatched_state):
            torch.testing.assert_close(actual, wanted, atol=tol, rtol=tol)
    assert len(full_path_calls) == 1, "after the first call, every step should take the planned fast path"


def test_step_leaves_the_state_it_is_given_untouched_and_returns_new_tensors(no_reference_step) -> None:
    _, lstm = make_pair(5, layer_norm=True, num_layers=2)
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        _, state = lstm.step(x)  # the full path plans the fast one
        for _ in range(3):  # then the fast path
            given = tuple(s.clone() for s in state)
            h_t, new_state = lstm.step(x, state)
            assert all(torch.equal(s, g) for s, g in zip(state, given)), "step modified the state it was given"
            pointers = {t.data_ptr() for t in (h_t, *new_state, *state)}
            assert len(pointers) == 5, "outputs must be new tensors, apart from the state and each other"
            assert all(t.is_contiguous() for t in (h_t, *new_state))
            h_t.add_(1.0)  # the caller owns them: changing the output changes no state
            assert not torch.equal(h_t, new_state[0][-1])
            state = new_state


def test_kept_answers_of_many_steps_share_no_memory_and_stay_as_computed(monkeypatch) -> None:
    """Every answer of 100 steps kept by the caller keeps its values and owns its memory, and each equals the
    reference."""
    reference, lstm = make_pair(11, num_layers=2, peephole=True)
    xs = torch.randn(100, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    expected, _ = reference_steps(reference, xs, None)
    kept, state = [], None
    with torch.no_grad():
        _, state = lstm.step(xs[0], state)  # the full path plans the fast one
        monkeypatch.setattr(lstmkit.nn.lstm._layer, "step_lstm", None)  # any reference step would fail
        kept.append((_, state))
        for x_t in xs[1:]:
            h_t, state = lstm.step(x_t, state)
            kept.append((h_t, state))
    spans = sorted((t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()) for h_t, st in kept for t in (h_t, *st))
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), "two answers share memory"
    for t, (h_t, _) in enumerate(kept):
        torch.testing.assert_close(h_t, expected[t], atol=TOL64, rtol=TOL64)


def test_the_returned_state_is_read_as_it_is_now_when_given_back() -> None:
    """The state the last call returned, changed in place or moved to other memory (``set_``) before it is given
    back: the next step reads it as it is now."""
    reference, lstm = make_pair(13, layer_norm=True)
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        _, state = lstm.step(x)
        _, state = lstm.step(x, state)
        state[1].mul_(-2.0)  # in place
        expected = reference_steps(reference, [x], tuple(s.clone() for s in state))
        steps = []
        run = FastStep.__call__
        FastStep.__call__ = lambda *args: steps.append(1) or run(*args)
        try:
            h_t, state = lstm.step(x, state)
        finally:
            FastStep.__call__ = run
        assert steps == [1], "the step should have asked the planned fast path"
        torch.testing.assert_close(h_t, expected[0][0], atol=TOL64, rtol=TOL64)
        moved = torch.randn(1, 3, 5, dtype=torch.float64)
        state[0].set_(moved.clone())  # other memory, same shape
        expected = reference_steps(reference, [x], tuple(s.clone() for s in state))
        h_t, state = lstm.step(x, state)
        torch.testing.assert_close(h_t, expected[0][0], atol=TOL64, rtol=TOL64)


def test_step_takes_non_contiguous_inputs_and_states(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, lstm = make_pair(6, peephole=True, num_layers=2)
    x = torch.randn(4, 3, dtype=torch.float64).t()  # (3, 4), not contiguous
    h = torch.randn(5, 3, 2, dtype=torch.float64).permute(2, 1, 0)  # (2, 3, 5), not contiguous
    c = torch.randn(2, 5, 3, dtype=torch.float64).transpose(1, 2)
    expected, expected_state = reference_steps(reference, [x, x], (h, c))
    monkeypatch.setattr(lstmkit.nn.lstm._layer, "step_lstm", None)  # any reference step would fail
    with torch.no_grad():
        for _ in range(2):  # the full path, then the fast path
            h_t, state = lstm.step(x, (h, c))
            torch.testing.assert_close(h_t, expected[0], atol=TOL64, rtol=TOL64)
        h_t, state = lstm.step(x, (state[0].transpose(0, 1).contiguous().transpose(0, 1), state[1]))
    torch.testing.assert_close(h_t, expected[1], atol=TOL64, rtol=TOL64)
    torch.testing.assert_close(state[1], expected_state[1], atol=TOL64, rtol=TOL64)


def stepped(lstm: LSTM, x, state):
    with torch.no_grad():
        return lstm.step(x, state)


@pytest.mark.parametrize("change", ["in place", "load_state_dict", "new parameter", ".data", "float64", "optimiser"])
def test_the_next_step_sees_changed_parameters(change: str) -> None:
    reference, lstm = make_pair(7, dtype=torch.float32, layer_norm=True, peephole=True)
    x = torch.randn(2, 4)
    state = (torch.randn(1, 2, 5), torch.randn(1, 2, 5))
    for _ in range(2):  # plan and take the fast path
        before, _ = stepped(lstm, x, state)
    torch.manual_seed(8)
    if change == "in place":
        with torch.no_grad():
            lstm.weight_hh_l0.add_(1.0)
            lstm.ln_c_bias_l0.sub_(0.5)
    elif change == "load_state_dict":
        lstm.load_state_dict(LSTM(4, 5, layer_norm=True, peephole=True).state_dict())
    elif change == "new parameter":
        lstm.weight_ih_l0 = torch.nn.Parameter(torch.randn_like(lstm.weight_ih_l0))
    elif change == ".data":
        lstm.weight_peephole_l0.data = torch.randn_like(lstm.weight_peephole_l0)
    elif change == "float64":
        lstm.double()
        x, state = x.double(), tuple(s.double() for s in state)
    elif change == "optimiser":
        lstm.train()
        loss = lstm(torch.randn(3, 2, 4))[0].square().sum()
        loss.backward()
        torch.optim.SGD(lstm.parameters(), lr=0.5).step()
        lstm.eval()
    reference = reference.to(x.dtype)
    reference.load_state_dict(lstm.state_dict())
    for _ in range(2):  # the first call after the change, and the next
        after, (_, c) = stepped(lstm, x, state)
        expected, (_, c_ref) = stepped(reference, x, state)
        assert after.dtype == x.dtype
        torch.testing.assert_close(after, expected, atol=TOL32, rtol=TOL32)
        torch.testing.assert_close(c, c_ref, atol=TOL32, rtol=TOL32)
    if change != "float64":  # the same values, now computed in float64
        assert not torch.allclose(after, before, atol=1e-3), "the step did not see the change"


def test_a_module_moved_off_the_kernel_lets_go_of_its_plan() -> None:
    reference, lstm = make_pair(14, dtype=torch.float32)
    x = torch.randn(2, 4)
    for _ in range(2):
        stepped(lstm, x, None)
    lstm.bfloat16()  # a dtype the kernel does not compute: the reference step, and the plan is dropped
    h_t, _ = stepped(lstm, x.bfloat16(), None)
    assert h_t.dtype == torch.bfloat16 and lstmkit.nn.lstm._FAST_STEPS.get(lstm) is None
    expected = stepped(reference, x, None)[0]
    torch.testing.assert_close(h_t.float(), expected, atol=0.05, rtol=0.05)


def test_a_non_contiguous_parameter_is_read_fresh_at_every_step() -> None:
    reference, lstm = make_pair(9, dtype=torch.float32)
    lstm.weight_hh_l0.data = lstm.weight_hh_l0.data.t().contiguous().t()  # same values, column-major
    x = torch.randn(1, 4)
    for _ in range(2):
        stepped(lstm, x, None)
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(2.0)
        reference.weight_hh_l0.mul_(2.0)
    x = torch.randn(1, 4)
    state = (torch.randn(1, 1, 5), torch.randn(1, 1, 5))
    torch.testing.assert_close(stepped(lstm, x, state)[0], stepped(reference, x, state)[0], atol=TOL32, rtol=TOL32)


def test_errors_are_those_of_the_full_path_once_the_fast_path_is_planned() -> None:
    _, lstm = make_pair(10, dtype=torch.float32)
    x = torch.randn(2, 4)
    for _ in range(2):
        _, state = stepped(lstm, x, None)
    with pytest.raises(ShapeError, match=r"LSTM.step: expected x_t of shape \(N, H_in\) .* got shape \(2, 3\)"):
        stepped(lstm, torch.randn(2, 3), state)
    with pytest.raises(ShapeError, match=r"LSTM.step: expected h of shape \(1, 3, 5\) .* got \(1, 2, 5\)"):
        stepped(lstm, torch.randn(3, 4), state)
    with pytest.raises(ValueError, match="expected x_t of dtype torch.float32 like the parameters, got torch.float64"):
        stepped(lstm, x.double(), state)
    with pytest.raises(ValueError, match="LSTM.step: expected state c of dtype torch.float32 on cpu like x_t, got"):
        stepped(lstm, x, (state[0], state[1].double()))
    with pytest.raises(TypeError, match=r"LSTM.step: expected state to be a tuple \(h, c\) of two tensors, got dict"):
        stepped(lstm, x, {"h": state[0]})
    with pytest.raises(TypeError, match="LSTM.step: expected x_t to be a Tensor, got list"):
        stepped(lstm, [0.0] * 4, state)


def test_autograd_training_and_autocast_take_the_reference_step_after_the_fast_path_is_planned() -> None:
    reference, lstm = make_pair(11, dtype=torch.float32, zoneout=0.5)
    x, state = torch.randn(2, 4), (torch.randn(1, 2, 5), torch.randn(1, 2, 5))
    for _ in range(2):
        stepped(lstm, x, state)
    h_t, _ = lstm.step(x, state)  # autograd on
    assert h_t.grad_fn is not None
    h_t.sum().backward()
    assert lstm.weight_hh_l0.grad is not None
    torch.manual_seed(0)
    train_h, _ = lstm.train().step(x, state)  # zoneout draws masks in training
    torch.manual_seed(0)
    torch.testing.assert_close(train_h, reference.train().step(x, state)[0], atol=TOL32, rtol=TOL32)
    lstm.eval()
    exact = stepped(lstm, x, state)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = stepped(lstm, x, state)[0]  # the reference step: its matrix products in bfloat16
    assert not torch.equal(autocast.float(), exact)
    torch.testing.assert_close(autocast.float(), exact, atol=0.05, rtol=0.05)


def test_concurrent_steps_on_one_module_agree_with_sequential_ones() -> None:
    """The kernel's scratch memory is per thread: threads stepping one module do not disturb each other."""
    _, lstm = make_pair(12, dtype=torch.float32, layer_norm=True, num_layers=2)
    inputs = [torch.randn(20, batch, 4) for batch in (1, 2, 3, 5)]

    def run(xs):
        state, outputs = None, []
        with torch.no_grad():
            for x_t in xs:
                h_t, state = lstm.step(x_t, state)
                outputs.append(h_t)
        return torch.stack(outputs)

    expected = [run(xs) for xs in inputs]
    results: dict[int, torch.Tensor] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(inputs[i]))) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, wanted in enumerate(expected):
        # not bit-equal: BLAS may split a matrix product differently when threads call it at once
        torch.testing.assert_close(results[i], wanted, atol=TOL32, rtol=TOL32, msg=f"thread {i}")


def test_a_vanilla_step_loads_a_built_kernel_but_never_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build():
        raise AssertionError("LSTM.step must not build the kernel")

    x = torch.randn(1, 3)
    monkeypatch.setattr(fast, "_state", {})  # a fresh process, the kernel built on disk (the fixture built it)
    monkeypatch.setattr(fast, "build", no_build)
    lstm = LSTM(3, 4).eval()
    with torch.no_grad():
        lstm.step(x)
    assert fast.loaded(), "the built kernel was not loaded"
    assert lstmkit.nn.lstm._FAST_STEPS.get(lstm) is not None

    monkeypatch.setattr(fast, "_state", {})
    monkeypatch.setattr(fast, "built", lambda: None)  # nothing built yet: the reference step, no build
    lstm = LSTM(3, 4).eval()
    with torch.no_grad():
        lstm.step(x)
    assert not fast.loaded() and lstmkit.nn.lstm._FAST_STEPS.get(lstm) is None


@pytest.mark.parametrize("variant", STEP_VARIANTS)
def test_stream_covers_every_variant_the_step_kernel_does(variant: str) -> None:
    reference, lstm = make_pair(13, **STEP_VARIANTS[variant])
    x = torch.randn(4, 2, 4, dtype=torch.float64)
    output = reference(x)[0]
    stream = lstm.stream(batch_size=2)
    assert stream.backend == "fast", stream.backend_reason
    for t in range(4):
        torch.testing.assert_close(stream.step(x[t]), output[t], atol=TOL64, rtol=TOL64)


def test_the_streaming_example_of_the_docs_runs_and_its_no_grad_step_takes_the_kernel(tmp_path) -> None:
    page = (Path(__file__).parent.parent.parent / "docs" / "variants.md").read_text(encoding="utf-8")
    section = page[page.index("## Streaming and the other modules"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    namespace = runpy.run_path(str(tmp_path / "example.py"))
    assert namespace["h_t"].shape == (1, 64) and namespace["y"].shape == (64,)
    assert namespace["h_t"].grad_fn is None and namespace["state"][1].shape == (1, 1, 64)
    assert lstmkit.nn.lstm._FAST_STEPS.get(namespace["lstm"]) is not None
