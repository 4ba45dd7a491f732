"""Does each LSTM variant learn the adding problem (T=100) to MSE < 0.01 within a fixed budget?

Each variant gets the same budget: up to ``--max-steps`` Adam steps at batch 64 on freshly generated
sequences, with the test MSE on 1,000 held-out sequences measured every 100 steps; a variant passes when
that MSE drops below 0.01. Predicting the mean gives about 0.167.

    python bench/adding_problem.py                       # every variant
    python bench/adding_problem.py --only vanilla peephole
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table  # noqa: E402

from lstmkit.data.synthetic import adding_problem  # noqa: E402
from lstmkit.nn import LSTM  # noqa: E402

VARIANTS: dict[str, dict] = {
    "vanilla": {},
    "peephole": {"peephole": True},
    "coupled_gates": {"coupled_gates": True},
    "layer_norm": {"layer_norm": True},
    "recurrent_dropout=0.1": {"recurrent_dropout": 0.1},
    "zoneout=0.1": {"zoneout": 0.1},
    "weight_drop=0.1": {"weight_drop": 0.1},
    "cell_clip=3": {"cell_clip": 3.0},
    "proj_size=32": {"proj_size": 32},
    "hard_sigmoid gates": {"gate_activation": "hard_sigmoid"},
    "relu cell + hidden": {"cell_activation": "relu", "hidden_activation": "relu"},
    "relu cell + hidden, cell_clip=5": {"cell_activation": "relu", "hidden_activation": "relu", "cell_clip": 5.0},
    "2 layers, residual": {"num_layers": 2, "residual": True},
    "bidirectional, merge sum": {"bidirectional": True, "merge_mode": "sum"},
}


class Regressor(nn.Module):
    def __init__(self, hidden: int, **variant) -> None:
        super().__init__()
        self.lstm = LSTM(2, hidden, batch_first=True, **variant)
        self.head = nn.Linear(self.lstm.output_size if hasattr(self.lstm, "output_size") else hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)  # (N, L, H_out)
        return self.head(output[:, -1]).squeeze(-1)


def run(name: str, variant: dict, args: argparse.Namespace) -> dict[str, str]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_test, y_test = map(torch.from_numpy, adding_problem(1000, args.length, np.random.default_rng(12345)))
    model = Regressor(args.hidden, **variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, reached, mse = time.perf_counter(), None, float("nan")
    for step in range(1, args.max_steps + 1):
        model.train()
        x, y = map(torch.from_numpy, adding_problem(64, args.length, rng))
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0:
            model.eval()
            with torch.no_grad():
                mse = float(nn.functional.mse_loss(model(x_test), y_test))
            if mse < 0.01:
                reached = step
                break
    seconds = time.perf_counter() - start
    print(f"{name}: {'reached' if reached else 'did not reach'} MSE < 0.01"
          f"{f' at step {reached}' if reached else ''}; test MSE {mse:.4f}; {seconds:.0f} s", flush=True)
    return {"variant": name, "path": model.lstm.backend,
            "steps to MSE < 0.01": str(reached) if reached else f"not within {args.max_steps}",
            "final test MSE": f"{mse:.4f}", "seconds": f"{seconds:.0f}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run only these variants")
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small matrices: one thread avoids OpenMP stalls on a busy 2-core box
    rows = [run(name, VARIANTS[name], args) for name in (args.only or VARIANTS)]
    print()
    print(f"adding problem, T={args.length}, hidden {args.hidden}, batch 64, Adam lr {args.lr}, "
          f"budget {args.max_steps} steps, seed {args.seed}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine_info().items()))
    print()
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
