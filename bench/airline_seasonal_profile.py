"""A prototype, outside lstmkit, of one more Airline representation: each window's own seasonal profile removed.

ES-RNN and N-BEATS take a series' level and seasonality out before the network sees it. lstmkit has the level
(``[data] level = m``); this script tries the seasonality too, before any of it is built into the product, on
the same validation fold as ``bench/airline_selection.py`` (train on months 1-72, forecast 73-108 in one go).

For a window ``u`` of W = k * m log passengers (m = 12), aligned to its end::

    p_j = mean_c ( u[c*m + j] - mean(u[c*m : (c+1)*m]) )      j = 0..m-1, c = 0..k-1   (the season's profile)
    s   = u - tile(p),  l = mean(s[-m:])                                               (deseasonalised, level)
    x   = (s - l) / sigma,   target = (u_future - tile(p) - l) / sigma

so the network sees and forecasts the trend alone, and the forecast is ``exp(out * sigma + l + tile(p))``.
``sigma`` is a fixed scale of the training part. With W = m the deseasonalised window is identically zero (the
network sees no input), so the candidate is W = 2m = 24.

Modes (the model in every mode: LSTM(32) on the last step, a linear head of 36 outputs, Adam 3e-3 with cosine
decay, 300 epochs, batch 8, clipping 1.0, MSE; as ``configs/airline_sktime.toml``):

* ``log-diff``: log, first differences standardised, the 36-step forecast summed up (the shipped recipe);
* ``log-level``: log less each window's last-season mean (lstmkit's ``level = 12``, ``difference = 0``);
* ``log-season``: the seasonal profile above.

Usage::

    python bench/airline_seasonal_profile.py log-season --window 24 --split validation --seeds 10
    python bench/airline_seasonal_profile.py log-season --window 24 --split test --seeds 10

Prints each seed's MAPE, their mean, and the MAPE of the seeds' mean forecast.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

AIRLINE = Path(__file__).resolve().parents[1] / "src" / "lstmkit" / "data" / "series" / "airline.csv"
SEASON = 12
HORIZON = 36


def load_airline() -> np.ndarray:
    with open(AIRLINE) as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return np.array([float(r["passengers"]) for r in rows])


def season_profile(window: np.ndarray, m: int = SEASON) -> np.ndarray:
    """``p`` (m,): the mean over the window's k = len // m whole seasons (aligned to its end) of each season
    less its own mean; position j is the phase of ``window[-m + j]``."""
    k = len(window) // m
    seasons = window[len(window) - k * m:].reshape(k, m)
    return (seasons - seasons.mean(axis=1, keepdims=True)).mean(axis=0)


def tile(profile: np.ndarray, n: int, end_aligned: bool) -> np.ndarray:
    """The profile repeated over ``n`` points: the last ``n`` of the window's phases, or the next ``n``."""
    reps = np.tile(profile, n // len(profile) + 1)
    return reps[len(reps) - n:] if end_aligned else reps[:n]


class Representation:
    """Inputs and targets of a window for one mode, and the way back from the network's outputs."""

    def __init__(self, mode: str, train: np.ndarray):
        self.mode = mode
        steps = np.diff(train)
        if mode == "log-diff":
            self.mean, self.scale = steps.mean(), steps.std()
        else:  # the scale of one month's change: keeps targets near unit size without fitting a trend
            self.mean, self.scale = 0.0, steps.std()

    def _base(self, window: np.ndarray, n_future: int) -> tuple[np.ndarray, np.ndarray]:
        """What is taken out of the window's points and added back to the forecast, per position."""
        profile = season_profile(window) if self.mode == "log-season" else np.zeros(SEASON)
        past, future = tile(profile, len(window), True), tile(profile, n_future, False)
        level = (window - past)[-SEASON:].mean()
        return past + level, future + level

    def sample(self, before: np.ndarray, window: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "log-diff":
            x = np.diff(np.concatenate([before[-1:], window]))
            y = np.diff(np.concatenate([window[-1:], future]))
            return (x - self.mean) / self.scale, (y - self.mean) / self.scale
        past, ahead = self._base(window, len(future))
        return (window - past) / self.scale, (future - ahead) / self.scale

    def forecast(self, before: np.ndarray, window: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.mode == "log-diff":
            return window[-1] + np.cumsum(out * self.scale + self.mean)
        _, ahead = self._base(window, len(out))
        return out * self.scale + ahead


def forecast(y: np.ndarray, origin: int, window: int, mode: str, seed: int, epochs: int = 300) -> np.ndarray:
    """Train on ``y[:origin]`` and forecast ``y[origin:origin + 36]`` in one go."""
    torch.manual_seed(seed)
    u = np.log(y)
    rep = Representation(mode, u[:origin])
    pairs = [rep.sample(u[:o - window], u[o - window:o], u[o:o + HORIZON])
             for o in range(window + 1, origin - HORIZON + 1)]  # origin o: first target; one point before
    x = torch.tensor(np.array([p[0] for p in pairs]), dtype=torch.float32)[..., None]
    t = torch.tensor(np.array([p[1] for p in pairs]), dtype=torch.float32)
    lstm, head = torch.nn.LSTM(1, 32, batch_first=True), torch.nn.Linear(32, HORIZON)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    batch = 8
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(x) // batch))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.mse_loss(head(lstm(x[idx])[0][:, -1]), t[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
    xin, _ = rep.sample(u[:origin - window], u[origin - window:origin], np.zeros(HORIZON))
    with torch.no_grad():
        out = head(lstm(torch.tensor(xin, dtype=torch.float32)[None, :, None])[0][:, -1])[0].numpy()
    return np.exp(rep.forecast(u[:origin - window], u[origin - window:origin], out.astype(np.float64)))


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - predicted) / np.abs(actual)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["log-diff", "log-level", "log-season"])
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    y = load_airline()
    if args.split == "validation":
        y, origin = y[:108], 72  # the test months are never read
    else:
        origin = 108
    forecasts = [forecast(y, origin, args.window, args.mode, s) for s in range(args.seeds)]
    actual = y[origin:origin + HORIZON]
    scores = [mape(actual, f) for f in forecasts]
    print(f"{args.mode}, window {args.window}, {args.split}: MAPE by seed {' '.join(f'{s:.4f}' for s in scores)}; "
          f"mean {np.mean(scores):.4f} (range {min(scores):.4f}-{max(scores):.4f}); "
          f"mean forecast {mape(actual, np.mean(forecasts, axis=0)):.4f}")


if __name__ == "__main__":
    main()
