"""The LSTM paths on a CUDA GPU: a training step of every variant against cuDNN's vanilla LSTM, at three shapes.

Shapes (issue 22): the seed's 128x28x28, H=128; text 32x200x128, H=256, bidirectional, 2 layers; long series
64x500x1, H=64. Rows: ``torch.nn.LSTM`` and lstmkit's vanilla LSTM (both cuDNN), every variant on the path
``impl="auto"`` picks (``lstmkit.nn.gpu``: Triton kernels, each time loop one CUDA graph), and the candidates
it was chosen against: the same kernels launched step by step (``LSTMKIT_CUDA_GRAPHS=0``) and the reference
loop (``impl="reference"``, seed shape only: it takes a second per step at the others).

A training step is forward, a linear head on the last step, cross-entropy, backward and Adam, float32 with
PyTorch's default TF32 settings, ``cudnn.benchmark`` on. The implementations of one shape are interleaved,
round by round, each sample synchronised; medians, and ratios to ``torch.nn.LSTM`` (cuDNN's vanilla step)
in the same run. The first steps (warm-up, not timed) compile the Triton kernels and capture the graphs.

Run on a machine with a GPU: ``python bench/gpu_paths.py`` (``--shapes seed`` for one shape). Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, summarize  # noqa: E402

from lstmkit.nn import LSTM  # noqa: E402

SHAPES = {  # name: (batch, steps, features, hidden, extra LSTM arguments)
    "seed": (128, 28, 28, 128, {}),
    "text": (32, 200, 128, 256, dict(num_layers=2, bidirectional=True)),
    "long": (64, 500, 1, 64, {}),
}
TITLES = {
    "seed": "seed 128x28x28, H=128",
    "text": "text 32x200x128, H=256, 2 layers, bidirectional",
    "long": "long series 64x500x1, H=64",
}
VARIANTS = {  # name: (LSTM arguments, variable lengths)
    "vanilla": ({}, False),
    "layer_norm": (dict(layer_norm=True), False),
    "peephole": (dict(peephole=True), False),
    "coupled_gates": (dict(coupled_gates=True), False),
    "cell_clip=1": (dict(cell_clip=1.0), False),
    "relu": (dict(cell_activation="relu", hidden_activation="relu"), False),
    "zoneout=0.1": (dict(zoneout=0.1), False),
    "recurrent_dropout=0.25": (dict(recurrent_dropout=0.25), False),
    "peephole+proj_size=H/2": ("proj", False),  # proj_size alone is vanilla: cuDNN computes it
    "peephole, lengths": (dict(peephole=True), True),
    "layer_norm+peephole+zoneout": (dict(layer_norm=True, peephole=True, zoneout=0.1), False),
}
CANDIDATES = ("layer_norm", "peephole")  # also timed launch by launch, and (seed shape) as the reference loop
TARGET = 1.5  # issue 22: every variant's training step at most 1.5x cuDNN's vanilla step


@contextlib.contextmanager
def _graphs(on: bool):
    saved = os.environ.get("LSTMKIT_CUDA_GRAPHS")
    os.environ["LSTMKIT_CUDA_GRAPHS"] = "1" if on else "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["LSTMKIT_CUDA_GRAPHS"]
        else:
            os.environ["LSTMKIT_CUDA_GRAPHS"] = saved


class Run:
    """One implementation at one shape: the module, its head and optimiser, and how it is called."""

    def __init__(self, lstm: nn.Module, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None,
                 graphs: bool = True) -> None:  # fmt: skip
        self.lstm, self.x, self.y, self.lengths, self.graphs = lstm.to(x.device).train(), x, y, lengths, graphs
        with torch.no_grad(), _graphs(graphs):
            width = self._lstm_output().size(-1)
        self.head = nn.Linear(width, 10).to(x.device)
        self.opt = torch.optim.Adam([*self.lstm.parameters(), *self.head.parameters()])

    def _lstm_output(self) -> torch.Tensor:
        if self.lengths is None:
            return self.lstm(self.x)[0]
        return self.lstm(self.x, lengths=self.lengths)[0]

    def step(self) -> None:
        with _graphs(self.graphs):
            out = self._lstm_output()
            loss = nn.functional.cross_entropy(self.head(out[:, -1]), self.y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


def build_runs(shape: str, device: torch.device) -> dict[str, tuple[Run, str, bool]]:
    """Every implementation at ``shape``, by row name, with the path it runs and whether the target applies."""
    n, steps, features, hidden, extra = SHAPES[shape]
    x = torch.randn(n, steps, features, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    lengths = torch.randint(steps // 2, steps + 1, (n,), device=device)
    lengths[0] = steps
    cudnn = Run(nn.LSTM(features, hidden, batch_first=True, **extra), x, y, None)
    runs = {"torch.nn.LSTM": (cudnn, "cuDNN" if device.type == "cuda" else "PyTorch", False)}
    for name, (config, with_lengths) in VARIANTS.items():
        config = dict(peephole=True, proj_size=hidden // 2) if config == "proj" else config
        lstm = LSTM(features, hidden, batch_first=True, device=device, **extra, **config)
        run = Run(lstm, x, y, lengths if with_lengths else None)
        runs[f"lstmkit {name}"] = (run, lstm.choose_backend(x, lengths=with_lengths).name, name != "vanilla")
        if name in CANDIDATES:
            eager = LSTM(features, hidden, batch_first=True, device=device, **extra, **config)
            runs[f"lstmkit {name}, no CUDA graphs"] = (Run(eager, x, y, None, graphs=False), "triton, step by step",
                                                       False)  # fmt: skip
            if shape == "seed":
                reference = LSTM(features, hidden, batch_first=True, impl="reference", device=device, **extra, **config)
                runs[f"lstmkit {name}, impl='reference'"] = (Run(reference, x, y, None), "reference", False)
    return runs


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(shape: str, rounds: int, steps: int, warmup: int, device: torch.device) -> list[dict[str, str]]:
    runs = build_runs(shape, device)
    started = time.perf_counter()
    for run, _, _ in runs.values():
        for _ in range(warmup):
            run.step()
    _synchronize(device)
    print(f"  ({shape}: warm-up, Triton compiles and graph captures, {time.perf_counter() - started:.1f} s)",
          file=sys.stderr)  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = runs[name][0]
            _synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                run.step()
            _synchronize(device)
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    base = summarize(times["torch.nn.LSTM"])["median"]
    rows = []
    for name, samples in times.items():
        s = summarize(samples)
        ratio = s["median"] / base
        is_variant = runs[name][2]
        rows.append({
            "implementation": name, "path": runs[name][1], "ms/step (median)": f"{s['median']:.2f}",
            "min-max": f"{s['min']:.2f}-{s['max']:.2f}", "vs cuDNN (torch.nn.LSTM)": f"{ratio:.2f}x",
            f"<= {TARGET}x": ("yes" if ratio <= TARGET else "NO") if is_variant else "",
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed sample")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per implementation first")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try the script itself")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    try:
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton_version = "not installed"
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}, triton {triton_version}, "
          "float32 (TF32 as PyTorch's default)")  # fmt: skip
    for shape in args.shapes:
        torch.manual_seed(0)
        rows = measure(shape, args.rounds, args.steps, args.warmup, device)
        print(f"\n### Training step, {TITLES[shape]}\n")
        print(markdown_table(rows), flush=True)


if __name__ == "__main__":
    main()
