"""AutoARIMA on a long season: pmdarima's seasonal search against lstmkit's Fourier terms, time and accuracy.

lstmkit's AutoARIMA (``lstmkit.evaluation.statistical``) searches seasonal ARIMA orders only for m <= 12; a
longer season gets a non-seasonal ``auto_arima`` with K pairs of Fourier terms (dynamic harmonic regression,
K by AIC). This script times both on one synthetic weekly-like series (a sine of period m, a slow trend,
unit noise, seed 0) and scores each forecast of the next m points by MAPE against the series' continuation:

    python bench/arima_long_season.py --season 52 --length 208
    python bench/arima_long_season.py --season 24 --length 240 --skip-seasonal

One thread; the seasonal search can take minutes (``--skip-seasonal`` leaves it out).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lstmkit.evaluation.forecasting import mape
from lstmkit.evaluation.statistical import auto_arima_forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--season", type=int, default=52)
    parser.add_argument("--length", type=int, default=208, help="points of history")
    parser.add_argument("--skip-seasonal", action="store_true", help="leave out pmdarima's seasonal search")
    args = parser.parse_args()
    m, n = args.season, args.length
    t = np.arange(n + m)
    series = 100 + 10 * np.sin(2 * np.pi * t / m) + 0.1 * t + np.random.default_rng(0).normal(size=n + m)
    history, future = series[:n], series[n:]
    started = time.perf_counter()
    fourier = auto_arima_forecast(history, m, m)
    print(f"m = {m}, {n} points: lstmkit AutoARIMA (Fourier terms) {time.perf_counter() - started:.1f} s, "
          f"MAPE {mape(future, fourier):.4f}")
    if not args.skip_seasonal:
        import pmdarima

        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = pmdarima.auto_arima(history, m=m, seasonal=True, suppress_warnings=True, error_action="ignore")
        seasonal = model.predict(m)
        print(f"m = {m}, {n} points: pmdarima seasonal search {time.perf_counter() - started:.1f} s, "
              f"MAPE {mape(future, seasonal):.4f} (order {model.order}, seasonal {model.seasonal_order})")


if __name__ == "__main__":
    main()
