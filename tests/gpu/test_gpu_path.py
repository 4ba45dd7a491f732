"""The GPU path of the variants (lstmkit.nn.gpu: Triton kernels, each loop one CUDA graph) on a real GPU, at the
benchmark's sizes: against the reference loop on the same GPU (same masks from one seed), forward and every
gradient; with CUDA graphs and without; captured loops reused. Skipped without a CUDA GPU or without Triton.

``tests/nn/test_nn_gpu_kernels.py`` runs the small cases (every variant, float32 and float64, a gradient check)
here too, compiled for the GPU instead of interpreted."""

from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("triton", reason="the GPU path needs Triton (pip install 'lstmkit[gpu]')")

from lstmkit.nn import LSTM  # noqa: E402
from lstmkit.nn.gpu import graphs  # noqa: E402

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def full_float32():
    """No TF32: these tests compare code paths, and TF32 products keep 10 bits of mantissa."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def make_pair(dtype: torch.dtype, **config) -> tuple[LSTM, LSTM]:
    """The same LSTM as ``impl="reference"`` and ``impl="auto"`` on the GPU, every parameter non-trivial."""
    torch.manual_seed(0)
    reference = LSTM(init="torch", impl="reference", dtype=dtype, **config)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.startswith("weight_peephole"):
                p.copy_(0.5 * torch.randn_like(p))
            elif name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    auto = LSTM(init="torch", dtype=dtype, **config)
    auto.load_state_dict(reference.state_dict())
    return reference.to(CUDA), auto.to(CUDA)


def forward_backward(lstm: LSTM, x: torch.Tensor, lengths: torch.Tensor | None) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_()
    torch.manual_seed(5)  # the masks of the training mode, drawn by both paths in one order
    output, (h_n, c_n) = lstm(x, lengths=lengths)
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype).to(CUDA)).sum() for t in (output, h_n, c_n))
    grads = torch.autograd.grad(loss, [x, *lstm.parameters()])
    names = ["x", *(name for name, _ in lstm.named_parameters())]
    return {"output": output, "h_n": h_n, "c_n": c_n, **{f"grad {n}": g for n, g in zip(names, grads)}}


SEED = dict(input_size=28, hidden_size=128, batch_first=True)
TEXT = dict(input_size=128, hidden_size=256, num_layers=2, bidirectional=True, batch_first=True)
CASES = {  # name: (LSTM arguments, shape (N, L), with lengths)
    "seed layer_norm": ({**SEED, "layer_norm": True}, (128, 28), False),
    "seed peephole+coupled_gates, lengths": ({**SEED, "peephole": True, "coupled_gates": True}, (128, 28), True),
    "seed zoneout+recurrent_dropout+weight_drop": (
        {**SEED, "zoneout": 0.1, "recurrent_dropout": 0.25, "weight_drop": 0.2}, (128, 28), False),
    "seed relu+cell_clip": ({**SEED, "cell_activation": "relu", "hidden_activation": "relu", "cell_clip": 1.0},
                            (128, 28), False),
    "seed peephole+proj_size": ({**SEED, "peephole": True, "proj_size": 64}, (128, 28), False),
    "text layer_norm+peephole+zoneout, lengths": ({**TEXT, "layer_norm": True, "peephole": True, "zoneout": 0.1},
                                                  (32, 50), True),
}  # fmt: skip


@pytest.mark.parametrize("graphs_on", [True, False], ids=["graphs", "no-graphs"])
@pytest.mark.parametrize("case", CASES)
def test_the_gpu_path_computes_what_the_reference_computes_at_benchmark_sizes(
    case: str, graphs_on: bool, monkeypatch
) -> None:
    config, (n, steps), with_lengths = CASES[case]
    monkeypatch.setenv("LSTMKIT_CUDA_GRAPHS", "1" if graphs_on else "0")
    reference, auto = make_pair(torch.float32, **config)
    assert auto.backend == "triton"
    x = torch.randn(n, steps, config["input_size"], device=CUDA)
    lengths = torch.randint(1, steps + 1, (n,)) if with_lengths else None
    expected = forward_backward(reference, x, lengths)
    actual = forward_backward(auto, x, lengths)
    actual_again = forward_backward(auto, x, lengths)  # a second call: the captured loops replayed
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-3, rtol=1e-3, msg=lambda m, name=name: f"{name}: {m}")
        torch.testing.assert_close(actual_again[name], actual[name], atol=1e-6, rtol=1e-6)


def test_captured_loops_are_reused_across_calls_directions_and_layers(monkeypatch) -> None:
    monkeypatch.setenv("LSTMKIT_CUDA_GRAPHS", "1")
    monkeypatch.setattr(graphs, "_cache", graphs.OrderedDict())
    _, auto = make_pair(torch.float32, input_size=16, hidden_size=16, num_layers=2, bidirectional=True,
                        peephole=True, proj_size=8)  # fmt: skip  # layer 1's input: 2 * 8 = 16 = H_in
    x = torch.randn(4, 9, 16, device=CUDA)
    for _ in range(3):
        auto(x)[0].sum().backward()
    assert len(graphs._cache) == 2  # one forward and one backward loop for all four directions
    assert all(loop is not None for loop in graphs._cache.values())  # captured, not fallen back


def test_float64_on_the_gpu_to_rounding() -> None:
    reference, auto = make_pair(torch.float64, **{**SEED, "layer_norm": True, "peephole": True, "zoneout": 0.1})
    x = torch.randn(16, 28, 28, device=CUDA, dtype=torch.float64)
    expected = forward_backward(reference, x, None)
    actual = forward_backward(auto, x, None)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-10, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")
