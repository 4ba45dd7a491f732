"""The LSTM paths on a CUDA GPU: a training step at the seed shape and the text shape, cuDNN against the
variants (which run lstmkit's reference loop on a GPU: the C++ fast kernel is CPU-only).

Run on a machine with a GPU: ``python bench/gpu_paths.py``. Prints a markdown table; medians of interleaved
rounds, each step synchronised, ratios to ``torch.nn.LSTM`` in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import markdown_table, summarize  # noqa: E402

from lstmkit.nn import LSTM  # noqa: E402

SHAPES = {  # batch, steps, features, hidden, extra LSTM arguments
    "seed 128x28x28, H=128": (128, 28, 28, 128, {}),
    "text 32x200x128, H=256, 2 layers, bidirectional": (32, 200, 128, 256, dict(num_layers=2, bidirectional=True)),
}
VARIANTS = {"vanilla": {}, "layer_norm": dict(layer_norm=True), "peephole": dict(peephole=True),
            "zoneout=0.1": dict(zoneout=0.1)}


def _step(lstm: nn.Module, head: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    out, _ = lstm(x)
    loss = nn.functional.cross_entropy(head(out[:, -1]), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed sample")
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, float32 (TF32 as PyTorch's default)")
    for shape, (n, steps, features, hidden, extra) in SHAPES.items():
        x = torch.randn(n, steps, features, device=device)
        y = torch.randint(0, 10, (n,), device=device)
        runs = {"torch.nn.LSTM": nn.LSTM(features, hidden, batch_first=True, **extra)}
        runs.update({f"lstmkit {name}": LSTM(features, hidden, batch_first=True, **extra, **cfg)
                     for name, cfg in VARIANTS.items()})
        kits = {}
        for name, lstm in runs.items():
            lstm.to(device).train()
            head = nn.Linear(hidden * (2 if extra.get("bidirectional") else 1), 10).to(device)
            opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()])
            for _ in range(3):
                _step(lstm, head, opt, x, y)
            kits[name] = (lstm, head, opt)
        times: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(args.steps):
                    _step(*kits[name], x, y)
                torch.cuda.synchronize()
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
        base = summarize(times["torch.nn.LSTM"])["median"]
        rows = []
        for name, samples in times.items():
            s = summarize(samples)
            backend = getattr(runs[name], "backend", "cuDNN")
            rows.append({"implementation": name, "path": backend, "ms/step (median)": f"{s['median']:.2f}",
                         "min-max": f"{s['min']:.2f}-{s['max']:.2f}", "vs torch.nn.LSTM": f"{s['median'] / base:.2f}x"})
        print(f"\n### Training step, {shape}\n")
        print(markdown_table(rows))


if __name__ == "__main__":
    main()
