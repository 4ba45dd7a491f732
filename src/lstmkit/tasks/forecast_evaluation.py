"""A forecasting run's test evaluation: the LSTM beside the naive baselines and the statistical forecasters.

A forecasting run (``lstmkit train`` on ``airline``, ``shampoo-sales``, ``lynx`` or ``series``) writes,
besides the usual run folder (``lstmkit.runs.train``)::

    metrics.json     test_mae, test_rmse, test_mape, test_smape, test_mase of the LSTM, and the same five for
                     the naive baselines (test_naive_*, test_seasonal_naive_*) and the statistical
                     forecasters AutoETS and AutoARIMA (test_auto_ets_*, test_auto_arima_*; with the extra
                     ``lstmkit[stats]``, see ``lstmkit.evaluation.statistical``, unless ``[train]
                     statistical = false``), on the same test windows
    evaluation.txt   the methods side by side, and whether the LSTM beats each of them (by MASE)
    evaluation.json  the same, with the setting (windows, horizon, season, test points)
    forecast.csv     one row per test point and series (see ``FORECAST_COLUMNS``)
    forecast.png     history, actuals, LSTM forecast and baselines over the test part

Forecasts are made on the scaled series and turned back into values (``SeriesScaler.inverse``) before
any metric: every number above is on the original scale. ``lstmkit forecast`` (``lstmkit.tasks.forecasting``)
writes its forecasts in the same CSV format.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.config import Config
from lstmkit.data.base import SourceData
from lstmkit.data.windows import ForecastSpec
from lstmkit.evaluation.forecasting import (
    BASELINES,
    forecast_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from lstmkit.evaluation.statistical import (
    STATISTICAL,
    statistical_available,
    statistical_forecasts_many,
)

__all__ = [
    "FORECAST_COLUMNS",
    "LABELS",
    "METHODS",
    "METRICS",
    "Backtest",
    "backtest",
    "forecast_csv_rows",
    "format_backtest",
    "write_forecast_csv",
    "write_forecast_evaluation",
]

log = logging.getLogger(__name__)

METHODS = ("lstm", *BASELINES, *STATISTICAL)
"""Every method a run's evaluation can score; the statistical ones only when their libraries are installed."""
METRICS = ("mae", "rmse", "mape", "smape", "mase")
LABELS = {"lstm": "LSTM", "naive": "naive", "seasonal_naive": "seasonal naive", "auto_ets": "AutoETS",
          "auto_arima": "AutoARIMA"}

FORECAST_COLUMNS = ("time", "series", "window", "step", "actual", "forecast", "naive", "seasonal_naive",
                    "auto_ets", "auto_arima")
"""The columns of ``forecast.csv``, one row per forecast point and series:

* ``time``: the point's time label from the data (empty where it cannot be inferred, past the data's end);
* ``series``: the series name (a column of a wide file, an id of a long file, or the bundled series' name);
* ``window``: which forecast the point belongs to: 0..k-1 over the k test windows of a run, 0 for
  ``lstmkit forecast``;
* ``step``: 1..H, the steps ahead of that forecast's origin;
* ``actual``: the observed value (empty for a forecast past the end of the data);
* ``forecast``: the LSTM's forecast on the original scale;
* ``naive``, ``seasonal_naive``: the baselines' forecasts for the same point from the same history;
* ``auto_ets``, ``auto_arima``: the statistical forecasters' (empty where they were not run: without
  ``lstmkit[stats]``, or ``lstmkit forecast --no-statistical``).
"""


@dataclass
class Backtest:
    """Forecasts of every method over the test windows, and their metrics.

    ``actual`` and each ``forecasts[method]`` have shape (k, H, S): k test windows of H steps of S series.
    ``forecasts`` holds the methods of ``METHODS`` that were run, in that order.
    """

    name: str
    names: list[str]
    times: list[str]
    """Time labels of the k * H test points, in order."""
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    horizon: int
    season: int
    window: int
    notes: list[str] = field(default_factory=list)
    """Why a method is missing or failed on a series (``lstmkit.evaluation.statistical``)."""


def backtest(spec: ForecastSpec, outputs: np.ndarray, statistical: bool = True) -> Backtest:
    """Score the forecaster's scaled ``outputs`` (k, H * S) for the test windows of ``spec`` beside the
    naive, seasonal-naive and (``statistical`` and installed) AutoETS and AutoARIMA forecasts from the same
    histories, all on the original scale."""
    values, horizon, season = spec.series.values, spec.horizon, spec.season
    origins = spec.split.test
    actual = np.stack([values[o:o + horizon] for o in origins])  # (k, H, S)
    forecasts = {
        "lstm": spec.to_values(outputs, origins),
        "naive": np.stack([naive_forecast(values[:o], horizon) for o in origins]),
        "seasonal_naive": np.stack([seasonal_naive_forecast(values[:o], horizon, season) for o in origins]),
    }
    notes: list[str] = []
    if statistical:
        started, available = time.perf_counter(), statistical_available()
        if available:
            windows = "the test window" if len(origins) == 1 else f"each of the {len(origins)} test windows"
            log.info("fitting AutoETS and AutoARIMA to %d series before %s (season %d); "
                     "[train] statistical = false skips them", values.shape[1], windows, season)
        runs = statistical_forecasts_many([values[:o] for o in origins], horizon, season)
        if available:
            log.info("AutoETS and AutoARIMA took %.1f s", time.perf_counter() - started)
        for _, window_notes in runs:
            notes += [note for note in window_notes if note not in notes]
        for method in STATISTICAL:
            if all(method in found for found, _ in runs):
                forecasts[method] = np.stack([found[method] for found, _ in runs])  # (k, H, S)
    else:
        notes.append("AutoETS and AutoARIMA were not fitted ([train] statistical = false)")
    insample = values[:spec.split.test_start]
    s = values.shape[1]
    metrics = {method: forecast_metrics(actual.reshape(-1, s), f.reshape(-1, s), insample, season)
               for method, f in forecasts.items()}
    times = [spec.series.times[o + h] for o in origins for h in range(horizon)]
    return Backtest(name=spec.name, names=list(spec.series.names), times=times, actual=actual,
                    forecasts=forecasts, metrics=metrics, horizon=horizon, season=season, window=spec.window,
                    notes=notes)


def format_backtest(result: Backtest) -> str:
    """The methods side by side as plain text, with the LSTM's verdict (by MASE) against each other method."""
    k = result.actual.shape[0]
    lines = [f"{result.name}: {result.horizon}-step forecasts of {len(result.names)} series from windows of "
             f"{result.window}, over the last {k * result.horizon} points ({k} test window{'s' * (k > 1)}); "
             f"season m = {result.season}",
             "",
             f"{'method':<16}{'MAE':>12}{'RMSE':>12}{'MAPE':>9}{'sMAPE %':>10}{'MASE':>9}"]
    for method in result.forecasts:
        m = result.metrics[method]
        lines.append(f"{method:<16}{m['mae']:>12.4g}{m['rmse']:>12.4g}{m['mape']:>9.4f}{m['smape']:>10.3f}"
                     f"{m['mase']:>9.4f}")
    ours = result.metrics["lstm"]["mase"]
    others = [method for method in result.forecasts if method != "lstm"]
    beaten = [LABELS[m] for m in others if ours < result.metrics[m]["mase"]]
    lost = [LABELS[m] for m in others if not ours < result.metrics[m]["mase"]]
    verdict = ("the LSTM beats " + ("all of them" if not lost else ", ".join(beaten) if beaten else "none of them")
               + ("" if not lost or not beaten else f"; it does not beat {', '.join(lost)}"))
    scores = ", ".join(f"{LABELS[m]} {result.metrics[m]['mase']:.4f}" for m in result.forecasts)
    lines += ["", f"MASE: {scores}: {verdict}"]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def forecast_csv_rows(times: list[str], names: list[str], actual: np.ndarray | None,
                      forecasts: dict[str, np.ndarray], horizon: int) -> list[list[Any]]:
    """Rows of ``FORECAST_COLUMNS`` from arrays (k, H, S) (``actual`` may be None)."""
    k, h, s = forecasts["lstm"].shape
    rows = []
    for w in range(k):
        for step in range(h):
            for j in range(s):
                row = [times[w * horizon + step], names[j], w, step + 1,
                       "" if actual is None else _number(actual[w, step, j])]
                row += ["" if method not in forecasts else _number(forecasts[method][w, step, j])
                        for method in METHODS]
                rows.append(row)
    return rows


def _number(value: float) -> str:
    return f"{float(value):.6g}"


def write_forecast_csv(path: Path, rows: list[list[Any]]) -> None:
    """``rows`` under the header ``FORECAST_COLUMNS``, as ``forecast.csv`` (a run's or ``lstmkit forecast``'s)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FORECAST_COLUMNS)
    writer.writerows(rows)
    Path(path).write_text(buffer.getvalue(), encoding="utf-8")


def write_forecast_evaluation(model: Any, config: Config, source: SourceData, out_dir: Path) -> dict[str, Any]:
    """The forecasting run's evaluation: metrics of the LSTM and both baselines on the test windows.

    Writes ``evaluation.txt``, ``evaluation.json``, ``forecast.csv`` and ``forecast.png`` into ``out_dir``
    and returns the metrics for ``metrics.json`` (``test_mase``, ``test_naive_mase``,
    ``test_seasonal_naive_mase``, ... and ``test_loss`` on the scaled series).
    """
    from lstmkit.report.plots import plot_series_forecast

    spec: ForecastSpec = source.forecast
    result = backtest(spec, model.predict(source.test.x).reshape(len(source.test), -1),
                      statistical=config.train.statistical)
    text = format_backtest(result)
    (out_dir / "evaluation.txt").write_text(text + "\n", encoding="utf-8")
    report = {"data": result.name, "series": result.names, "window": result.window, "horizon": result.horizon,
              "season": result.season, "test_windows": int(result.actual.shape[0]), "test_times": result.times,
              "metrics": result.metrics, "notes": result.notes}
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_forecast_csv(out_dir / "forecast.csv",
                       forecast_csv_rows(result.times, result.names, result.actual, result.forecasts, result.horizon))
    start = spec.split.test_start
    s = len(result.names)
    plot_series_forecast(out_dir / "forecast.png", spec.series.times[:start], spec.series.values[:start], result.times,
                  result.forecasts["lstm"].reshape(-1, s), actual=result.actual.reshape(-1, s),
                  baselines={LABELS[b]: f.reshape(-1, s) for b, f in result.forecasts.items() if b != "lstm"},
                  names=result.names,
                  title=f"{result.name}: test forecast", last=max(4 * len(result.times), 3 * spec.window))
    log.debug("%s", text)
    metrics: dict[str, Any] = {}
    for method in result.forecasts:
        prefix = "test_" if method == "lstm" else f"test_{method}_"
        metrics.update({prefix + name: result.metrics[method][name] for name in METRICS})
    metrics["test_loss"] = float(model.evaluate(source.test)["loss"])
    return metrics
