"""What needs a CUDA GPU, skipped without one: the engine on the GPU against the CPU (every variant, forward
and backward, with and without ``lengths``), the paths it picks there, training and saving on the GPU and
loading on the CPU, repeatable runs, and the rule that a GPU worker needs a GPU of its own.

CI has no GPU; run these where there is one: ``pytest tests/gpu``."""

from __future__ import annotations

import copy
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from sklearn.datasets import load_digits

from lstmkit.cli import main
from lstmkit.tasks.sequence_model import Model
from lstmkit.nn import LSTM, ConvLSTM

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

CUDA = torch.device("cuda")
CONFIGS = Path(__file__).parent.parent.parent / "configs"


@pytest.fixture(autouse=True)
def full_float32():
    """No TF32: these tests compare code paths, and TF32 products keep 10 bits of mantissa."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


VARIANTS = {
    "vanilla": {},
    "proj_size": dict(proj_size=3),
    "peephole": dict(peephole=True),
    "coupled_gates": dict(coupled_gates=True),
    "layer_norm": dict(layer_norm=True),
    "cell_clip": dict(cell_clip=0.5),
    "relu": dict(cell_activation="relu", hidden_activation="relu"),
    "hard_sigmoid-softsign": dict(gate_activation="hard_sigmoid", cell_activation="softsign"),
    "zoneout (eval)": dict(zoneout=0.2),
    "recurrent_dropout (eval)": dict(recurrent_dropout=0.3),
    "bidirectional-residual": dict(bidirectional=True, residual=True),
}


def _forward_backward(lstm: LSTM, x: torch.Tensor, lengths: torch.Tensor | None) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_()
    output, (h_n, c_n) = lstm(x, lengths=lengths)
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device)).sum() for t in (output, h_n, c_n))
    grads = torch.autograd.grad(loss, [x, *lstm.parameters()])
    names = ["x", *(name for name, _ in lstm.named_parameters())]
    return {"output": output, "h_n": h_n, "c_n": c_n, **{f"grad {n}": g for n, g in zip(names, grads)}}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_gpu_computes_what_the_cpu_computes(variant: str, dtype: torch.dtype, with_lengths: bool) -> None:
    torch.manual_seed(0)
    cpu = LSTM(5, 8, num_layers=2, batch_first=True, dtype=dtype, **VARIANTS[variant])
    if "eval" in variant:
        cpu.eval()  # the masks of the training mode come from each device's own generator
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = torch.randn(4, 9, 5, dtype=dtype)
    lengths = torch.tensor([9, 6, 3, 1]) if with_lengths else None
    expected = _forward_backward(cpu, x, lengths)
    actual = _forward_backward(gpu, x.to(CUDA), lengths)
    tol = 1e-10 if dtype == torch.float64 else 1e-3  # float32: rounding, amplified by layer norm
    for name, value in expected.items():
        torch.testing.assert_close(actual[name].cpu(), value, atol=tol, rtol=tol, msg=lambda m: f"{name}: {m}")


def test_the_paths_on_the_gpu() -> None:
    """cuDNN for the vanilla LSTM (also with ``lengths``); the variants run the Triton kernels of
    lstmkit.nn.gpu where Triton is installed (the reference loop otherwise), and ``backend`` says so."""
    on_cpu = LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3)
    vanilla = copy.deepcopy(on_cpu).to(CUDA)
    assert vanilla.backend == "fused"
    assert vanilla.choose_backend(torch.zeros(1, device=CUDA), lengths=True).name == "fused"  # cuDNN takes lengths
    # One cuDNN buffer holds every weight (flatten_parameters), and laying them out changed no value.
    assert len({p.untyped_storage().data_ptr() for p in vanilla.parameters()}) == 1
    for name, value in on_cpu.state_dict().items():
        assert torch.equal(vanilla.state_dict()[name].cpu(), value), name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "RNN module weights are not part of single contiguous chunk of memory"
        output, _ = vanilla(torch.randn(7, 2, 5, device=CUDA))
        output.sum().backward()
    triton_installed = importlib.util.find_spec("triton") is not None
    assert LSTM(5, 8, layer_norm=True).to(CUDA).backend == ("triton" if triton_installed else "reference")


def test_a_stream_steps_a_gpu_module() -> None:
    lstm = LSTM(3, 8, num_layers=2, peephole=True).to(CUDA).eval()
    x = torch.randn(6, 3, device=CUDA)
    with torch.no_grad():
        expected, _ = lstm(x.unsqueeze(1))
    stream = lstm.stream()
    outputs = torch.stack([stream.step(x_t).clone() for x_t in x])
    assert outputs.device.type == "cuda"
    torch.testing.assert_close(outputs, expected.squeeze(1), atol=1e-5, rtol=1e-5)


def test_conv_lstm_on_the_gpu_equals_the_cpu() -> None:
    torch.manual_seed(0)
    cpu = ConvLSTM(2, [4, 4], kernel_size=3, num_layers=2).double()
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = torch.randn(2, 5, 2, 8, 8, dtype=torch.float64)
    expected = cpu(x)[0]
    actual = gpu(x.to(CUDA))[0]
    torch.testing.assert_close(actual.cpu(), expected, atol=1e-10, rtol=1e-10)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    return x[:1400], d.target[:1400], x[1400:], d.target[1400:]


FAST = ["train.progress=false", "model.hidden_size=32", "train.epochs=2", "train.lr=1e-2", "train.device=cuda"]


def test_fit_on_the_gpu_then_predict_on_the_cpu(digits, tmp_path) -> None:
    x, y, xt, yt = digits
    model = Model.from_config(None, FAST).fit((x, y), val=(xt, yt))
    assert model.trainer.device.type == "cuda" and next(model.module.parameters()).device.type == "cpu"
    assert model.evaluate((xt, yt))["accuracy"] > 0.5
    probs = model.predict_proba(xt[:16])
    loaded = Model.load(model.save(tmp_path / "m"))
    assert next(loaded.module.parameters()).device.type == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(xt[:16]), probs, atol=1e-5)


def test_two_deterministic_gpu_runs_give_the_same_weights(digits) -> None:
    x, y, xt, yt = digits
    runs = [Model.from_config(None, FAST + ["train.deterministic=true", "train.seed=3"]).fit((x, y))
            for _ in range(2)]
    first, second = (m.module.state_dict() for m in runs)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_the_cli_trains_on_the_gpu_and_exports_for_the_cpu(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "digits.toml"), "--out", str(out), "--set", "train.epochs=1",
                 "--set", "train.progress=false"]) == 0  # device "auto" picks the GPU
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5
    assert main(["evaluate", str(out / "model"), "--split", "test"]) == 0
    assert main(["export", str(out / "model"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert all(np.isfinite(v).all() for v in weights.values())


def test_more_gpu_workers_than_gpus_are_refused(tmp_path, capsys) -> None:
    gpus = torch.cuda.device_count()
    assert main(["train", str(CONFIGS / "digits.toml"), "--out", str(tmp_path / "r"), "--nproc", str(gpus + 1),
                 "--set", "train.batch_size=64"]) == 2
    err = capsys.readouterr().err
    assert f"each GPU worker needs its own GPU and this machine has {gpus}" in err
    assert not (tmp_path / "r").exists()


def test_cpu_workers_on_a_gpu_machine_use_gloo(tmp_path, capsys) -> None:
    out = tmp_path / "cpu"
    assert main(["train", str(CONFIGS / "digits.toml"), "--out", str(out), "--nproc", "2",
                 "--set", "train.device=\"cpu\"", "--set", "train.epochs=1", "--set", "train.batch_size=64",
                 "--set", "model.hidden_size=16", "--set", "train.progress=false"]) == 0
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.2


def test_seq2seq_and_frames_train_on_the_gpu(tmp_path, capsys) -> None:
    tiny_s2s = ["--set", "train.epochs=1", "--set", "data.samples=200", "--set", "data.val_samples=20",
                "--set", "data.test_samples=20", "--set", "model.hidden_size=16", "--set", "model.embedding_size=8"]
    assert main(["train", str(CONFIGS / "dates.toml"), "--out", str(tmp_path / "dates"), *tiny_s2s]) == 0
    assert main(["translate", str(tmp_path / "dates" / "model"), "March 3, 1999", "--beam", "3"]) == 0
    assert main(["train", str(CONFIGS / "moving_digits.toml"), "--out", str(tmp_path / "frames"),
                 "--set", "train.epochs=1", "--set", "data.samples=8", "--set", "data.val_samples=4",
                 "--set", "data.test_samples=4", "--set", "train.batch_size=4"]) == 0
    for run in ("dates", "frames"):
        metrics = json.loads((tmp_path / run / "metrics.json").read_text())
        assert all(np.isfinite(v) for v in metrics.values() if isinstance(v, float)), run
