"""Choose an Airline recipe on a validation fold inside sktime's training months, then score it on the test.

sktime's documented split of Airline holds out the last 36 months (1958-1960) and forecasts them in one go
from the first 108. Judging candidate recipes on those 36 months and keeping the best is selection on the
test set; this script keeps the two apart.

Validation protocol (decided before any candidate was scored): the same task shifted back 36 months. The
first 108 months (1949-1957) are written to a CSV and each candidate is trained on it as the ``series``
source with ``horizon = 36`` and one test window, so it learns from months 1-72 and forecasts months 73-108
(1955-1957) in one go; the scaling is fitted on months 1-72 only. The score is the MAPE of that forecast,
the mean over seeds (default 0-4), and the MAPE of the seeds' mean forecast (an ensemble of the seeds).
The test months are never read in ``--split validation``.

Selection rule: the candidate of ``CANDIDATES`` (all but the ablation at its end) with the lowest mean
validation MAPE over seeds 0-4 as a single model, since a recipe trains one model; the MAPE of the 5 seeds'
mean forecast is reported beside it. Only the chosen candidate is then run with ``--split test``.

``--split test`` trains the same candidate on the bundled ``airline`` source (the first 108 months) and
scores months 109-144, beside AutoETS and AutoARIMA from the same run.

Usage::

    python bench/airline_selection.py --candidate differences --split validation
    python bench/airline_selection.py --candidate level --split validation --seeds 0-4
    python bench/airline_selection.py --candidate level-w12 --split test --seeds 0-24 --ensemble 5

``--ensemble K`` also reports the MAPE of consecutive groups of K seeds averaged (seeds 0-4, 5-9, ...),
the mean and range over the groups: what a recipe that averages K seeds would score.

Each run is ``python -m lstmkit train configs/airline_sktime.toml --set ...`` in a subprocess, one thread,
its run folder kept under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "airline_sktime.toml"
AIRLINE = ROOT / "src" / "lstmkit" / "data" / "series" / "airline.csv"
TRAIN_MONTHS = 108  # sktime's training part; the validation fold is its last 36 months

CANDIDATES: dict[str, list[str]] = {
    # Overrides of configs/airline_sktime.toml, each spelling out the data keys it sets, so that a candidate
    # means the same whatever the recipe ships.
    # The recipe as shipped before this study: log + first differences, window 24, LSTM(32), 300 epochs
    "differences": ["data.window=24", "data.difference=1", "data.level=0"],
    # the shipped representation with a smaller net and weight decay
    "differences-small": ["data.window=24", "data.difference=1", "data.level=0", "model.hidden_size=16",
                          "train.weight_decay=1e-3"],
    # targets as levels (no differencing), each window's last-season mean of log passengers taken out
    "level": ["data.window=24", "data.difference=0", "data.level=12"],
    # the same with a smaller net and weight decay
    "level-small": ["data.window=24", "data.difference=0", "data.level=12", "model.hidden_size=16",
                    "train.weight_decay=1e-3"],
    # the same as "level" with window 12: the validation fold keeps 25 training windows instead of 13
    "level-w12": ["data.window=12", "data.difference=0", "data.level=12"],
    # An ablation added after the selection, scored on validation only: is it the window or the level?
    "differences-w12": ["data.window=12", "data.difference=1", "data.level=0"],
}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def _validation_csv(folder: Path) -> Path:
    """The first 108 months of the bundled series as a CSV the ``series`` source reads."""
    rows = [line for line in AIRLINE.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    header, data = rows[0], rows[1:]
    path = folder / "airline_first108.csv"
    path.write_text("\n".join([header, *data[:TRAIN_MONTHS]]) + "\n", encoding="utf-8")
    return path


def _run(candidate: str, split: str, seed: int, out: Path, data_csv: Path | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train one seed; returns (actual (36,), LSTM forecast (36,), metrics.json)."""
    run_dir = out / f"{candidate}-{split}-s{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # this script's own earlier run of the same candidate, split and seed
    overrides = ["train.num_threads=1", "train.report=false", "train.progress=false", f"train.seed={seed}",
                 *CANDIDATES[candidate]]
    if split == "validation":
        overrides += ["data.name=series", f"data.path={data_csv}", "data.season=12"]
    cmd = [sys.executable, "-m", "lstmkit", "train", str(CONFIG), "--out", str(run_dir)]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{candidate} seed {seed}: lstmkit train failed ({done.returncode})")
    with open(run_dir / "forecast.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    actual = np.array([float(r["actual"]) for r in rows])
    forecast = np.array([float(r["forecast"]) for r in rows])
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return actual, forecast, metrics


def _mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast) / np.abs(actual)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), required=True)
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--seeds", default="0-4", help="seeds, as 0-4 or 0,3,7")
    parser.add_argument("--ensemble", type=int, default=0, help="also score groups of K consecutive seeds averaged")
    parser.add_argument("--out", type=Path, default=Path("runs/airline_selection"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_csv = _validation_csv(args.out) if args.split == "validation" else None
    seeds = _seeds(args.seeds)
    started = time.perf_counter()
    actual, forecasts, last_metrics = None, [], {}
    for seed in seeds:
        actual, forecast, last_metrics = _run(args.candidate, args.split, seed, args.out, data_csv)
        forecasts.append(forecast)
        print(f"seed {seed}: MAPE {_mape(actual, forecast):.4f}", flush=True)
    wall = time.perf_counter() - started
    mapes = [_mape(actual, f) for f in forecasts]
    report = {"candidate": args.candidate, "overrides": CANDIDATES[args.candidate], "split": args.split,
              "seeds": seeds, "mape": mapes, "mape_mean": float(np.mean(mapes)),
              "mape_min": float(np.min(mapes)), "mape_max": float(np.max(mapes)),
              "mape_of_mean_forecast": _mape(actual, np.mean(forecasts, axis=0)), "wall_s": round(wall, 1),
              "reference": {m: last_metrics.get(f"test_{m}_mape") for m in ("auto_ets", "auto_arima", "seasonal_naive")}}
    if args.ensemble:
        k = args.ensemble
        groups = [forecasts[i:i + k] for i in range(0, len(forecasts) - k + 1, k)]
        scores = [_mape(actual, np.mean(g, axis=0)) for g in groups]
        report["ensemble"] = {"k": k, "mape": scores, "mean": float(np.mean(scores)),
                              "min": float(np.min(scores)), "max": float(np.max(scores))}
    print(json.dumps(report, indent=2))
    (args.out / f"{args.candidate}-{args.split}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
