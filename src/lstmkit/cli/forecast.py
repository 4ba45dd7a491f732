"""``lstmkit forecast MODEL``: forecast with a forecaster's model folder; writes a CSV and a PNG.

The CSV and the plot hold the LSTM's forecast beside naive, seasonal naive and (with ``lstmkit[stats]``)
AutoETS and AutoARIMA fitted to the same history; ``--backtest`` also prints each method's metrics. A pooled model
(``[data] pooled = true``) forecasts every series of the file, each from its own history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    forecast = subparsers.add_parser("forecast", help="forecast with a forecaster's model folder; writes a CSV and a PNG")
    forecast.add_argument("model", type=Path, help="model folder of a run on a forecasting source")
    forecast.add_argument("--horizon", type=int, default=None,
                          help="steps to forecast (default: the model's horizon; longer ones feed forecasts back)")
    forecast.add_argument("--input", type=Path,
                          help="CSV or Parquet series laid out as the training data (default: the model's own series)")
    forecast.add_argument("--backtest", action="store_true",
                          help="hold out the last HORIZON points and forecast them, to compare with the actuals")
    forecast.add_argument("--no-statistical", dest="statistical", action="store_false",
                          help="skip AutoETS and AutoARIMA (fitted to the same history when lstmkit[stats] is installed)")
    forecast.add_argument("--out", type=Path,
                          help="CSV to write (default forecast.csv); the plot goes beside it as .png")
    forecast.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lstmkit.tasks.forecasting import forecast_each_from_model, write_forecast

    results = forecast_each_from_model(args.model, horizon=args.horizon, input=args.input, backtest=args.backtest,
                                       statistical=args.statistical)
    out = args.out or Path("forecast.csv")
    png = out.with_suffix(".png")
    steps = len(results[0].forecast)
    write_forecast(results, out, png, title=f"{args.model}: {steps}-step forecast")
    count = sum(len(r.names) for r in results)
    print(f"wrote {out} ({steps} steps of {count} series) and {png}")
    if len(results) > 1 and results[0].metrics:
        print(f"metrics: the mean over the {len(results)} series")
    for name in results[0].metrics:
        keys = results[0].metrics[name]
        means = {key: float(np.mean([r.metrics[name][key] for r in results])) for key in keys}
        print(f"{name:<16}" + "   ".join(f"{key} {value:.4f}" for key, value in means.items()))
    notes = [note for r in results for note in r.notes]
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    return 0
