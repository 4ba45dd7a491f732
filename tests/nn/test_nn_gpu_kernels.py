"""The GPU path's Triton kernels (lstmkit.nn.gpu) against the reference loop, forward and backward, for every
variant, in float32 and float64, with lengths, in training (same masks) and evaluation; a float64 gradient
check; which backend a CUDA call takes, and why; Triton stays optional.

Without a GPU the kernels run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``, set here before
the kernels are imported); with one, on the GPU. Skipped when Triton is not installed (``lstmkit[gpu]``)."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are defined: they run on the CPU
pytest.importorskip("triton", reason="the GPU path's kernels need Triton (pip install 'lstmkit[gpu]')")

from torch.autograd import gradcheck  # noqa: E402

from lstmkit.nn import LSTM, LSTMOptions, gpu  # noqa: E402
from lstmkit.nn.backend import choose_backend  # noqa: E402
from lstmkit.nn.gpu.recurrence import gpu_lstm, run_direction  # noqa: E402
from lstmkit.nn.layer import reference_lstm  # noqa: E402
from lstmkit.nn.variants import Variants  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_lstm(seed: int, dtype: torch.dtype, **config) -> LSTM:
    """A reference LSTM with non-trivial values in every parameter (the variants' own start at 0 or 1,
    which would hide a missing term)."""
    torch.manual_seed(seed)
    lstm = LSTM(init="torch", impl="reference", dtype=dtype, device=DEVICE, **config)
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("weight_peephole"):
                p.copy_(0.5 * torch.randn_like(p))
            elif name.startswith("ln_") and "weight" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.startswith("ln_"):
                p.copy_(0.3 * torch.randn_like(p))
    return lstm


def run(path, lstm: LSTM, x: torch.Tensor, lengths: torch.Tensor | None, seed: int = 3) -> dict[str, torch.Tensor]:
    """Outputs, final states and every gradient of a random projection of them, through ``path``
    (``reference_lstm`` or ``gpu_lstm``), with the global RNG seeded so both draw the same masks."""
    x = x.clone().requires_grad_()
    structure = lstm.structure
    states = (2 if lstm.bidirectional else 1) * lstm.num_layers
    gen = torch.Generator().manual_seed(1)
    h0 = torch.randn(states, x.size(1), lstm.output_size, generator=gen, dtype=x.dtype).to(DEVICE).requires_grad_()
    c0 = torch.randn(states, x.size(1), lstm.hidden_size, generator=gen, dtype=x.dtype).to(DEVICE).requires_grad_()
    torch.manual_seed(seed)
    out, (h_n, c_n) = path(
        x, h0, c0, structure.layers, structure.activations, lstm.dropout, lstm.training, lengths, lstm.variants
    )
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype).to(DEVICE)).sum() for t in (out, h_n, c_n))
    names = ["x", "h0", "c0", *(name for name, _ in lstm.named_parameters())]
    grads = torch.autograd.grad(loss, [x, h0, c0, *lstm.parameters()])
    return {"output": out, "h_n": h_n, "c_n": c_n, **{f"grad {n}": g for n, g in zip(names, grads)}}


CASES = {  # name: (LSTM arguments, training, with lengths)
    "vanilla": (dict(), True, False),
    "peephole, lengths": (dict(peephole=True), True, True),
    "peephole+coupled_gates": (dict(peephole=True, coupled_gates=True), True, False),
    "layer_norm, lengths": (dict(layer_norm=True), True, True),
    "layer_norm+coupled_gates": (dict(layer_norm=True, coupled_gates=True), True, False),
    "cell_clip": (dict(cell_clip=0.3), True, False),
    "relu-elu": (dict(cell_activation="relu", hidden_activation="elu"), True, False),
    "hard_sigmoid-softsign": (dict(gate_activation="hard_sigmoid", cell_activation="softsign",
                                   hidden_activation="softsign"), True, False),
    "zoneout (training), lengths": (dict(zoneout=(0.3, 0.2)), True, True),
    "zoneout (evaluation)": (dict(zoneout=(0.3, 0.2)), False, False),
    "everything (evaluation), lengths": (dict(layer_norm=True, peephole=True, cell_clip=0.5, zoneout=0.2,
                                              recurrent_dropout=0.3, proj_size=4), False, True),
    "recurrent_dropout+weight_drop": (dict(recurrent_dropout=0.3, weight_drop=0.3), True, False),
    "proj_size+zoneout+recurrent_dropout, lengths": (dict(proj_size=3, zoneout=0.3, recurrent_dropout=0.3), True, True),
    "bidirectional, 2 layers, lengths": (dict(bidirectional=True, num_layers=2, peephole=True, layer_norm=True,
                                               cell_clip=0.5, dropout=0.2), True, True),
}


FLOAT32_CASES = ("layer_norm, lengths", "proj_size+zoneout+recurrent_dropout, lengths")


@pytest.mark.parametrize(
    ("case", "dtype"),
    [*((case, torch.float64) for case in CASES), *((case, torch.float32) for case in FLOAT32_CASES)],
    ids=[*(f"{case}-float64" for case in CASES), *(f"{case}-float32" for case in FLOAT32_CASES)],
)  # float32: two cases cover its rounding (the interpreter is slow)
def test_the_kernels_compute_what_the_reference_computes(case: str, dtype: torch.dtype) -> None:
    config, training, with_lengths = CASES[case]
    lstm = make_lstm(0, dtype, input_size=5, hidden_size=6, **config).train(training)
    x = torch.randn(6, 3, 5, dtype=dtype, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    lengths = torch.tensor([6, 4, 1], device=DEVICE) if with_lengths else None
    expected = run(reference_lstm, lstm, x, lengths)
    actual = run(gpu_lstm, lstm, x, lengths)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=tol, rtol=tol, msg=lambda m, name=name: f"{name}: {m}")
    if case == "cell_clip":  # the clip must have acted, or its gradient was not tested
        assert (expected["c_n"].abs() == 0.3).any()
    if not training:  # without autograd the kernels save nothing for a backward: the same outputs
        with torch.no_grad():
            inference = run_without_grad(lstm, x, lengths)
        torch.testing.assert_close(inference, expected["output"], atol=tol, rtol=tol)


def run_without_grad(lstm: LSTM, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    structure = lstm.structure
    states = (2 if lstm.bidirectional else 1) * lstm.num_layers
    gen = torch.Generator().manual_seed(1)
    h0 = torch.randn(states, x.size(1), lstm.output_size, generator=gen, dtype=x.dtype).to(DEVICE)
    c0 = torch.randn(states, x.size(1), lstm.hidden_size, generator=gen, dtype=x.dtype).to(DEVICE)
    out, _ = gpu_lstm(x, h0, c0, structure.layers, structure.activations, 0.0, False, lengths, lstm.variants)
    return out


def test_a_float64_gradient_check_of_one_direction() -> None:
    """Every input of one direction with every cell variant on, against finite differences (gradcheck's fast
    mode: random directions, a few evaluations per input, since the interpreter is slow)."""
    gen = torch.Generator().manual_seed(0)
    L, N, H = 3, 2, 3

    def rand(*shape, scale=0.5):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(DEVICE).requires_grad_()

    xw, h0, c0, w_hh = rand(L, N, 4 * H), rand(N, H), rand(N, H), rand(4 * H, H)
    peep, ln_hh, ln_c_w, ln_c_b = rand(3, H), rand(4 * H, scale=1.0), rand(H, scale=1.0), rand(H)
    valid = torch.tensor([[True, True], [True, False], [True, False]], device=DEVICE).unsqueeze(2)
    activations = make_lstm(0, torch.float64, input_size=1, hidden_size=H).structure.activations
    variants = Variants(peephole=True, layer_norm=True, cell_clip=0.4, zoneout=(0.2, 0.3))

    def direction(xw, h0, c0, w_hh, peep, ln_hh, ln_c_w, ln_c_b):
        weights = lstm_weights(w_hh, peep, ln_hh, ln_c_w, ln_c_b)
        return run_direction(xw, h0, c0, weights, activations, valid, variants=variants, training=False)

    assert gradcheck(direction, (xw, h0, c0, w_hh, peep, ln_hh, ln_c_w, ln_c_b), eps=1e-6, atol=1e-7, fast_mode=True)


def lstm_weights(w_hh, peep, ln_hh, ln_c_w, ln_c_b):
    from lstmkit.nn.layer import LayerWeights

    return LayerWeights(None, w_hh, None, None, None, peep, None, ln_hh, ln_c_w, ln_c_b)


def _cuda_like(dtype: torch.dtype = torch.float32) -> SimpleNamespace:
    """What choose_backend reads of a tensor (device and dtype), for a CUDA tensor on a machine without CUDA."""
    return SimpleNamespace(device=torch.device("cuda", 0), dtype=dtype)


def test_a_cuda_call_takes_the_triton_kernels_for_variants_and_cudnn_for_the_vanilla_lstm(monkeypatch) -> None:
    variant, vanilla = LSTMOptions.create(3, 8, layer_norm=True), LSTMOptions.create(3, 8)
    assert choose_backend(variant, _cuda_like()) == (
        "triton", "a variant or activation cuDNN does not compute, on a CUDA tensor: the Triton kernels"
    )
    fast = LSTMOptions.create(3, 8, impl="fast", zoneout=0.1)
    assert choose_backend(fast, _cuda_like(torch.float64)).name == "triton"
    assert choose_backend(vanilla, _cuda_like()).name == "fused"
    assert choose_backend(vanilla, _cuda_like(), lengths=True).name == "fused"  # cuDNN takes lengths
    assert choose_backend(LSTMOptions.create(3, 8, impl="reference", peephole=True), _cuda_like()).name == "reference"
    half = choose_backend(variant, _cuda_like(torch.float16))
    assert half == ("reference", "the GPU path computes float32 and float64, got torch.float16")
    monkeypatch.setattr(gpu, "available", lambda: False)
    assert choose_backend(variant, _cuda_like()) == (
        "reference", "the GPU path needs Triton, which is not installed (pip install 'lstmkit[gpu]')"
    )


def test_importing_lstmkit_does_not_import_triton() -> None:
    code = "import sys, lstmkit, lstmkit.nn; assert 'triton' not in sys.modules, 'triton imported'"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _replay_by_calling(fn):
    """A stand-in for a CUDA graph on the CPU: fixed output memory, refilled by running ``fn`` again."""
    outputs = fn()

    def replay():
        for static, fresh in zip(outputs.values(), fn().values()):
            static.copy_(fresh)

    return replay, outputs


def test_captured_loops_copy_each_call_in_and_out(monkeypatch) -> None:
    """With the loops captured (forward and backward), the four directions of a bidirectional 2-layer LSTM
    share one captured loop each way, and still compute what the reference computes: each call copies its
    tensors into the loop and the results out of it."""
    from lstmkit.nn.gpu import graphs

    monkeypatch.setattr(graphs, "enabled", lambda tensor: True)
    monkeypatch.setattr(graphs, "capture_cuda_graph", _replay_by_calling)
    monkeypatch.setattr(graphs, "_cache", graphs.OrderedDict())
    lstm = make_lstm(0, torch.float64, input_size=6, hidden_size=6, num_layers=2, bidirectional=True, peephole=True)
    x = torch.randn(5, 3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    lengths = torch.tensor([5, 3, 1], device=DEVICE)
    expected = run(reference_lstm, lstm, x, lengths)
    actual = run(gpu_lstm, lstm, x, lengths)
    assert len(graphs._cache) == 2  # forward and backward: one shape for every layer and direction
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-12, rtol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


COMPILE_FOR_SM90 = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from lstmkit.nn.gpu import kernels

def compile_for_sm90(fn, dtype, constexprs):
    ints = ("t", "N", "H")
    signature = {name: "constexpr" if name in constexprs else "i32" if name in ints else "*" + dtype
                 for name in fn.arg_names}
    compiled = triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", 90, 32),
                              options={"enable_fp_fusion": False})
    assert compiled.asm["cubin"], fn.__name__

off = dict(PEEP=False, LN_HH=False, LN_C=False, CLIP=False, ZH=False, ZH_MASK=False, ZC=False, ZC_MASK=False,
           VALID=False, PROJ=False)
on = dict(PEEP=True, LN_HH=True, LN_C=True, CLIP=True, ZH=True, ZH_MASK=True, ZC=True, ZC_MASK=True, VALID=True,
          PROJ=False)
for dtype, flags, gates, codes, block in (("fp32", off, 4, (0, 2, 2), 128), ("fp64", on, 4, (1, 3, 4), 256),
                                          ("fp32", {**on, "PROJ": True, "ZH_MASK": False}, 3, (0, 5, 2), 64)):
    common = dict(flags, G=gates, ACT_GATE=codes[0], ACT_CELL=codes[1], ACT_HIDDEN=codes[2], BLOCK_H=block)
    compile_for_sm90(kernels.forward_step, dtype, {**common, "RMASK": True, "SAVE": True})
    compile_for_sm90(kernels.backward_step, dtype, {**common, "HAS_D_OUT": True})
print("compiled")
"""


def test_the_kernels_compile_for_an_h100_class_gpu_without_one(tmp_path) -> None:
    """The interpreter runs Python, not the GPU compiler: compile both kernels to sm_90 machine code (Triton
    bundles the compiler; no GPU is needed to compile), with every variant flag on and off, float32 and
    float64, in a process without ``TRITON_INTERPRET``."""
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("TRITON_INTERPRET", None)
    result = subprocess.run([sys.executable, "-c", COMPILE_FOR_SM90], check=False, capture_output=True, text=True,
                            timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]


def test_a_loop_that_cannot_be_captured_warns_once_and_runs_launch_by_launch(monkeypatch) -> None:
    from lstmkit.nn.gpu import graphs

    def refuse(fn):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs, "enabled", lambda tensor: True)
    monkeypatch.setattr(graphs, "capture_cuda_graph", refuse)
    monkeypatch.setattr(graphs, "_cache", graphs.OrderedDict())
    lstm = make_lstm(0, torch.float64, input_size=3, hidden_size=4, zoneout=0.2)
    x = torch.randn(4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    expected = run(reference_lstm, lstm, x, None)
    with pytest.warns(UserWarning, match=r"could not capture its loop in a CUDA graph \(operation not permitted"):
        actual = run(gpu_lstm, lstm, x, None)
    assert list(graphs._cache.values()) == [None, None]  # forward and backward: not tried again
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-12, rtol=1e-12, msg=lambda m, name=name: f"{name}: {m}")
