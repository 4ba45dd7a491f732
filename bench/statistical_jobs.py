"""AutoETS and AutoARIMA fitted one after another against side by side in processes (``fit_jobs``).

A forecasting run fits both to every series before every test window. This times
``statistical_forecasts_many`` on S copies of Airline (each scaled differently) and k test windows, with
``jobs = 1`` and with one process per core, and checks that both give the same forecasts. The first pooled
call starts the worker processes (cold); later calls reuse them (warm), as the fits of one run do.

Usage::

    python bench/statistical_jobs.py --series 2 --windows 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from lstmkit.data.forecast_sources import load_bundled_series
from lstmkit.evaluation.statistical import fit_jobs, statistical_forecasts_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    y = load_bundled_series("airline").values[:, 0]
    values = np.stack([y * (1 + 0.1 * s) + 5 * s for s in range(args.series)], axis=1)
    ends = [len(y) - args.horizon * (args.windows - w) for w in range(args.windows)]
    histories = [values[:end] for end in ends]
    jobs = fit_jobs(args.series * args.windows)

    def timed(n: int) -> tuple[float, list]:
        started = time.perf_counter()
        result = statistical_forecasts_many(histories, args.horizon, 12, jobs=n)
        return time.perf_counter() - started, result

    cold, pooled = timed(jobs)
    serial_times, pooled_times = [], []
    for _ in range(args.repeats):
        seconds, serial = timed(1)
        serial_times.append(seconds)
        seconds, pooled = timed(jobs)
        pooled_times.append(seconds)
    same = all(np.array_equal(a[name], b[name]) for (a, _), (b, _) in zip(serial, pooled) for name in a)
    one, many = statistics.median(serial_times), statistics.median(pooled_times)
    print(f"{args.series} series x {args.windows} windows, horizon {args.horizon}, {os.cpu_count()} CPUs: "
          f"one after another {one:.1f} s; {jobs} processes {many:.1f} s warm, {cold:.1f} s cold (first call); "
          f"{one / many:.2f}x; same forecasts: {same}")


if __name__ == "__main__":
    main()
