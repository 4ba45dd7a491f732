"""Forecast the Airline series (monthly passengers, 1949-1960) with an LSTM, beside the naive baselines.

Holds out 1960, fits ``LSTMForecaster`` on 1949-1959 (log passengers, month-on-month changes, 36-month
windows, as ``configs/airline.toml``), forecasts the 12 held-out months and scores the forecast and the
naive and seasonal-naive baselines with MAE and MASE. LSTMs often lose to the seasonal naive forecast on
series this short; the point of printing the baselines is that you see when that happens.

Run:  python examples/airline_forecast.py           (EXAMPLE_FAST=1: a few epochs, for the tests)
"""

import os
from importlib.resources import files

import numpy as np

from lstmkit.evaluation.forecasting import mase
from lstmkit.tasks.forecasting import LSTMForecaster

FAST = os.environ.get("EXAMPLE_FAST") == "1"
THREADS = int(os.environ.get("EXAMPLE_THREADS", "0"))

# The bundled series: one row per month, with a comment header.
text = files("lstmkit.data").joinpath("series/airline.csv").read_text()
rows = [line.split(",") for line in text.splitlines() if line and not line.startswith("#")][1:]
months = [month for month, _ in rows]
passengers = np.array([float(value) for _, value in rows])
history, actual = passengers[:-12], passengers[-12:]
print(f"{len(passengers)} months, {months[0]} to {months[-1]}; forecasting {months[-12]} to {months[-1]}")

forecaster = LSTMForecaster(window=36, horizon=12, season=12, log=True, difference=1, val_fraction=0.1,
                            overrides=[f"train.epochs={5 if FAST else 200}", "train.lr=3e-3",
                                       "train.schedule=cosine", f"train.num_threads={THREADS}"])
forecaster.fit(history)
forecast = forecaster.predict(12)

print(f"{'method':<16}{'MAE':>8}{'MASE':>8}")
for name, values in {"LSTM": forecast, **forecaster.baselines(12)}.items():
    error = float(np.mean(np.abs(values - actual)))
    print(f"{name:<16}{error:>8.2f}{mase(actual, values, history, season=12):>8.3f}")
print("month     actual  LSTM")
for month, a, f in zip(months[-12:], actual, forecast):
    print(f"{month}  {a:>6.0f}  {f:>6.1f}")
