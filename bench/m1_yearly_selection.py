"""Choosing the pooled M1-yearly recipe without its test years, then scoring the choice on them.

The recipe ``configs/m1_yearly.toml`` trains one LSTM on the 181 yearly M1 series (``m1-yearly``) and scores
each series on its own last 6 years, M1's horizon. Its representation was chosen here, by this protocol:

* *Validation fold*: every series less its last 6 years, written to a long CSV and trained on as the ``series``
  source with the same settings; each series is scored on the 6 years before its test part. The test years
  are never read.
* *Score*: the mean MASE over the fold's series (m = 1, the in-sample naive scale; the M4 and Monash archive
  metric for yearly data), the mean of seeds 0-2.
* *Rule*: the lowest score wins; only the winner is run with ``--split test``.

Usage::

    python bench/m1_yearly_selection.py --candidate level1 --split validation --seeds 0-2
    python bench/m1_yearly_selection.py --candidate level1 --split test --seeds 0-4
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "m1_yearly.toml"
HORIZON = 6

CANDIDATES: dict[str, list[str]] = {
    # Overrides of configs/m1_yearly.toml, each spelling out every representation key it sets.
    "level1": ["data.window=6", "data.level=1", "data.difference=0"],  # relative to the last year (log y - log y_T)
    "level3": ["data.window=6", "data.level=3", "data.difference=0"],  # relative to the last three years' mean
    "difference": ["data.window=6", "data.level=0", "data.difference=1"],  # year-on-year log changes
    "level1-w10": ["data.window=10", "data.level=1", "data.difference=0"],  # a longer window
}


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last) + 1)) if last else [int(s) for s in text.split(",")]


def _validation_csv(folder: Path) -> Path:
    """Every M1 yearly series less its last ``HORIZON`` years, as a long CSV."""
    from lstmkit.config import DataConfig
    from lstmkit.data.forecast_sources import load_config_series_list

    path = folder / "m1_yearly_validation.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["year", "id", "value"])
        for s in load_config_series_list(DataConfig(name="m1-yearly", pooled=True)):
            writer.writerows((t, s.names[0], f"{v:.10g}") for t, v in zip(s.times[:-HORIZON], s.values[:-HORIZON, 0]))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), required=True)
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/m1_yearly_selection"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = ([] if args.split == "test" else
            ["data.name=series", f"data.path={_validation_csv(args.out)}", "train.statistical=false"])
    scores = {}
    for seed in _seeds(args.seeds):
        run = args.out / f"{args.candidate}-{args.split}-{seed}"
        settings = [*CANDIDATES[args.candidate], *data, f"train.seed={seed}", "train.num_threads=1",
                    "train.progress=false", "train.tensorboard=false", "train.report=false"]
        shutil.rmtree(run, ignore_errors=True)  # a rerun replaces the seed's run folder
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lstmkit", "train", str(CONFIG), "--out", str(run),
                        *[w for item in settings for w in ("--set", item)]], check=True, capture_output=True)
        report = json.loads((run / "evaluation.json").read_text())
        metrics = report["metrics"]
        scores[seed] = metrics["lstm"]["mase"]
        print(f"{args.candidate} {args.split} seed {seed}: " + ", ".join(
            f"{m} MASE {v['mase']:.4f} sMAPE {v['smape']:.2f}" for m, v in metrics.items())
              + f"; {len(report['series'])} series; {time.perf_counter() - started:.0f} s", flush=True)
    values = np.array(list(scores.values()))
    print(f"{args.candidate} {args.split}: LSTM MASE mean {values.mean():.4f} (range {values.min():.4f}-"
          f"{values.max():.4f}) over seeds {args.seeds}")


if __name__ == "__main__":
    main()
