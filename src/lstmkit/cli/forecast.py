"""``lstmkit forecast MODEL``: forecast with a forecaster's model folder; writes a CSV and a PNG.

The CSV and the plot hold the LSTM's forecast beside naive, seasonal naive and (with ``lstmkit[stats]``)
AutoETS and AutoARIMA fitted to the same history; ``--backtest`` also prints each method's metrics."""

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
    from lstmkit.tasks.forecasting import forecast_from_model, write_forecast

    result = forecast_from_model(args.model, horizon=args.horizon, input=args.input, backtest=args.backtest,
                                 statistical=args.statistical)
    out = args.out or Path("forecast.csv")
    png = out.with_suffix(".png")
    write_forecast(result, out, png, title=f"{args.model}: {len(result.forecast)}-step forecast")
    print(f"wrote {out} ({len(result.forecast)} steps of {len(result.names)} series) and {png}")
    for name, metrics in result.metrics.items():
        print(f"{name:<16}" + "   ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
    for note in result.notes:
        print(f"note: {note}")
    return 0
