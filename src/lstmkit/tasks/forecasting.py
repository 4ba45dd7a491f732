"""Forecasting on top of ``Model``: test-split evaluation against baselines, forecasts from a model folder,
and the scikit-learn style ``LSTMForecaster``.

A forecasting run (``lstmkit train`` on ``airline``, ``shampoo-sales``, ``lynx`` or ``series``) writes,
besides the usual run folder (``lstmkit.runs.train``)::

    metrics.json     test_mae, test_rmse, test_mape, test_smape, test_mase of the LSTM, and the same five for
                     the naive baselines (test_naive_*, test_seasonal_naive_*) and the statistical
                     forecasters AutoETS and AutoARIMA (test_auto_ets_*, test_auto_arima_*; with the extra
                     ``lstmkit[stats]``, see ``lstmkit.evaluation.statistical``), on the same test windows
    evaluation.txt   the methods side by side, and whether the LSTM beats each of them (by MASE)
    evaluation.json  the same, with the setting (windows, horizon, season, test points)
    forecast.csv     one row per test point and series (see ``FORECAST_COLUMNS``)
    forecast.png     history, actuals, LSTM forecast and baselines over the test part

Forecasts are made on the scaled series and turned back into values (``SeriesScaler.inverse``) before
any metric: every number above is on the original scale.

Example::

    result = forecast_from_model("runs/airline/model", horizon=24)        # 24 months past the data
    write_forecast(result, "airline.csv", "airline.png")

    est = LSTMForecaster(window=24, horizon=12, season=12, log=True, difference=12).fit(y)   # y: (T,)
    est.predict(12)                                                                          # (12,)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.config import Config
from lstmkit.data.base import SourceData
from lstmkit.data.timeseries import Series, read_series
from lstmkit.data.windows import ForecastSpec, SeriesScaler, make_windows, split_windows
from lstmkit.errors import DataError, ModelFolderError
from lstmkit.evaluation.forecasting import (
    BASELINES,
    forecast_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from lstmkit.evaluation.statistical import (
    STATISTICAL,
    statistical_available,
    statistical_forecasts,
)

__all__ = [
    "FORECAST_COLUMNS",
    "Backtest",
    "ForecastResult",
    "LSTMForecaster",
    "SavedForecaster",
    "backtest",
    "forecast_from_model",
    "format_backtest",
    "write_forecast",
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


# --------------------------------------------------------------------------------------------------------
# Evaluation of a run's test split


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
        runs = [statistical_forecasts(values[:o], horizon, season) for o in origins]
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


def _csv_rows(times: list[str], names: list[str], actual: np.ndarray | None, forecasts: dict[str, np.ndarray],
              horizon: int) -> list[list[Any]]:
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


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
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
    _write_csv(out_dir / "forecast.csv", _csv_rows(result.times, result.names, result.actual, result.forecasts,
                                                  result.horizon))
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


# --------------------------------------------------------------------------------------------------------
# Forecasts from a saved model


@dataclass
class ForecastResult:
    """A forecast of ``steps`` points after ``history``, with the baselines, the statistical forecasters and,
    when known, the actuals."""

    names: list[str]
    times: list[str]
    history: np.ndarray
    """(T, S) values the forecast starts from."""
    future_times: list[str]
    forecast: np.ndarray
    """(N, S) LSTM forecast."""
    baselines: dict[str, np.ndarray]
    """(N, S) forecasts of the same points by ``naive``, ``seasonal_naive`` and, when they ran, ``auto_ets``
    and ``auto_arima`` (``lstmkit.evaluation.statistical``), in that order."""
    actual: np.ndarray | None = None
    """(N, S) observed values (``backtest=True``), else None."""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per method, when the actuals are known."""
    notes: list[str] = field(default_factory=list)
    """Why a statistical forecaster is missing or failed on a series."""


def forecast_path(predict: Any, scaler: SeriesScaler, history: np.ndarray, steps: int, window: int,
                  horizon: int) -> np.ndarray:
    """Values ``(steps, S)`` after ``history`` (T, S): direct H-step forecasts, fed back for ``steps > H``.

    ``predict`` maps scaled windows ``(N, W, S)`` to scaled outputs ``(N, H * S)``; with a window level
    (``SeriesScaler.level``) it sees each window less its level, which is added back to its outputs.
    """
    z = scaler.transform(history)  # (T - d, S)
    if len(z) < window:
        raise DataError(f"forecast: expected at least {window + scaler.difference} points of history "
                        f"(window {window}" + (f" + difference {scaler.difference}" if scaler.difference else "")
                        + f"), got {len(history)}")
    s = z.shape[1]
    recent, chunks, made = z[-window:], [], 0
    while made < steps:
        level = scaler.window_level(recent)  # (S,), zeros without a level
        ahead = np.asarray(predict((recent - level)[None].astype(np.float32)), dtype=np.float64).reshape(horizon, s)
        ahead = ahead + level
        chunks.append(ahead)
        made += horizon
        recent = np.concatenate([recent, ahead])[-window:]
    return scaler.inverse(np.concatenate(chunks)[:steps], history)


def _future_times(times: list[str], steps: int) -> list[str]:
    """Labels for ``steps`` points after ``times``: integers continue, dates continue at their frequency,
    anything else is left empty."""
    import pandas as pd

    try:
        numbers = [int(t) for t in times]
    except ValueError:
        numbers = None
    if numbers is not None and len(numbers) >= 2:
        step = numbers[-1] - numbers[-2]
        return [str(numbers[-1] + step * (i + 1)) for i in range(steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(pd.Series(times), errors="coerce")
        frequency = pd.infer_freq(pd.DatetimeIndex(dates)) if len(times) >= 3 and dates.notna().all() else None
    if frequency is None:
        return [""] * steps
    future = pd.date_range(dates.iloc[-1], periods=steps + 1, freq=frequency)[1:]
    fmt = "%Y-%m" if all(len(t) == 7 for t in times[-3:]) else "%Y-%m-%d"
    return [d.strftime(fmt) for d in future]


def _model_series(config: Config, meta: dict[str, Any], input: str | Path | None) -> Series:
    from lstmkit.data.forecast_sources import load_config_series

    names = list(meta["series"])
    if input is None:
        return load_config_series(config.data)
    dc = config.data
    series = read_series(input, time_column=dc.time_column, format=dc.format, id_column=dc.id_column,
                         value_column=dc.value_column)
    if all(n in series.names for n in names):
        return Series(series.values[:, [series.names.index(n) for n in names]], series.times, names)
    if len(series.names) == len(names):
        return series
    raise DataError(f"forecast --input {input}: expected the model's {len(names)} series {names} (or "
                    f"{len(names)} value columns), got {series.names}")


def forecast_from_model(model_dir: str | Path, horizon: int | None = None, input: str | Path | None = None,
                        backtest: bool = False, statistical: bool = False) -> ForecastResult:
    """Forecast ``horizon`` points (default: the model's H) with a forecaster's model folder.

    Args:
        model_dir: a model folder written by ``lstmkit train`` on a forecasting source.
        horizon: points to forecast; beyond the model's H the forecasts are fed back as inputs.
        input: a CSV or Parquet series file laid out as the training data; default the model's own series.
        backtest: hold out the last ``horizon`` points and forecast them, so that the actuals (and the
            metrics of the LSTM and the baselines) are known; otherwise forecast past the data's end.
        statistical: also fit AutoETS and AutoARIMA to the same history (when ``lstmkit[stats]`` is
            installed; otherwise ``notes`` says so) and forecast the same points; off by default, as the
            fits take seconds (``lstmkit forecast`` turns it on).

    Raises:
        ModelFolderError: if the folder is not a forecaster's.
        DataError: if the series is too short or does not match the model's series.
    """
    import torch

    from lstmkit.artifacts.model_folder import load_model

    loaded = load_model(model_dir)
    meta = loaded.meta.get("forecast")
    if not isinstance(meta, dict):
        raise ModelFolderError(f"model folder {model_dir}: not a forecaster (its meta.json has no 'forecast' "
                               "entry); train one on a forecasting source such as airline or series")
    scaler = SeriesScaler.from_dict(meta["scaler"])
    window, model_horizon, season = int(meta["window"]), int(meta["horizon"]), int(meta["season"])
    steps = model_horizon if horizon is None else int(horizon)
    if steps < 1:
        raise DataError(f"forecast --horizon: expected a positive number of steps, got {steps}")
    series = _model_series(loaded.config, meta, input)
    values, times = series.values, series.times
    actual = None
    if backtest:
        if len(values) <= steps:
            raise DataError(f"forecast --backtest: expected more than {steps} points to hold out {steps}, got {len(values)}")
        values, actual, future_times, times = values[:-steps], values[-steps:], times[-steps:], times[:-steps]
    else:
        future_times = _future_times(times, steps)

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        return loaded.module(loaded.prepare(x)).numpy()

    forecast = forecast_path(predict, scaler, values, steps, window, model_horizon)  # first: it checks the history
    baselines = {"naive": naive_forecast(values, steps), "seasonal_naive": seasonal_naive_forecast(values, steps, season)}
    notes: list[str] = []
    if statistical:
        if statistical_available():
            log.info("fitting AutoETS and AutoARIMA to %d series (season %d); --no-statistical skips them",
                     values.shape[1], season)
        found, notes = statistical_forecasts(values, steps, season)
        baselines.update(found)
    result = ForecastResult(names=list(series.names), times=list(times), history=values, future_times=future_times,
                            forecast=forecast, baselines=baselines, actual=actual, notes=notes)
    if actual is not None:
        methods = {"lstm": result.forecast, **result.baselines}
        result.metrics = {m: forecast_metrics(actual, f, values, season) for m, f in methods.items()}
    return result


def write_forecast(result: ForecastResult, csv_path: str | Path, png_path: str | Path | None = None,
                   title: str = "Forecast") -> None:
    """Write ``result`` as a CSV of ``FORECAST_COLUMNS`` (window 0) and, if asked, a PNG plot."""
    from lstmkit.report.plots import plot_series_forecast

    steps, s = result.forecast.shape
    forecasts = {"lstm": result.forecast[None], **{b: v[None] for b, v in result.baselines.items()}}
    _write_csv(Path(csv_path), _csv_rows(result.future_times, result.names,
                                         None if result.actual is None else result.actual[None], forecasts, steps))
    if png_path is not None:
        plot_series_forecast(png_path, result.times, result.history, result.future_times, result.forecast,
                      actual=result.actual, baselines={LABELS[b]: v for b, v in result.baselines.items()},
                      names=result.names, title=title,
                      last=max(4 * steps, 48))


# --------------------------------------------------------------------------------------------------------
# The scikit-learn style estimator


class LSTMForecaster:
    """Fit an LSTM forecaster on one or many series and forecast what follows them.

    The same path as ``lstmkit train`` on a forecasting source: windows of W points, targets of the next
    H points, scaling fitted on the training part, the ``forecaster`` task trained by ``Model.fit`` with
    the latest ``val_fraction`` of the windows for choosing the best epoch.

    Args:
        window, horizon: W and H.
        season: m for ``baselines`` (seasonal naive).
        log, difference: model ``log y`` and/or lag-``difference`` differences (see ``SeriesScaler``).
        level: take each window's level (the mean of its last ``level`` scaled points) out of its inputs
            and targets (0: none; see ``lstmkit.data.windows``).
        val_fraction: latest windows held out for validation (0: none; the best epoch is then the one
            with the lowest training loss).
        config: a ``Config``, TOML path or nested dicts for ``[model]`` and ``[train]`` (default: a 32-unit
            LSTM, Adam 1e-2, 100 epochs, batch 16).
        overrides: dotted overrides such as ``["train.epochs=300"]``.

    Example::

        est = LSTMForecaster(window=24, horizon=12, season=12, log=True, difference=12)
        est.fit(passengers)             # (144,) array, pandas Series, or (T, S) / DataFrame
        est.predict(24)                 # (24,): the next 24 points
    """

    def __init__(self, window: int = 12, horizon: int = 1, season: int = 1, log: bool = False,
                 difference: int = 0, val_fraction: float = 0.0, config: Any = None,
                 overrides: Iterable[str] = (), level: int = 0) -> None:
        self.window, self.horizon, self.season = window, horizon, season
        self.log, self.difference, self.val_fraction = log, difference, val_fraction
        self.level = level
        self.config, self.overrides = config, list(overrides)

    def _config(self) -> Any:
        from lstmkit.tasks.sequence_model import Model

        base = {"model": {"task": "forecaster", "hidden_size": 32},
                "train": {"epochs": 100, "batch_size": 16, "lr": 1e-2, "progress": False, "tensorboard": False}}
        if self.config is None:
            return Model.from_config(base, self.overrides)
        return Model.from_config(self.config, [*self.overrides, "model.task=forecaster"])

    def fit(self, y: Any) -> LSTMForecaster:
        """Fit on ``y``: (T,) or (T, S) values, a pandas Series or a DataFrame (one column per series)."""
        names = None
        if hasattr(y, "columns"):
            names = [str(c) for c in y.columns]
        self._univariate = np.ndim(y) == 1
        series = Series.from_array(np.asarray(y, dtype=np.float64), names)
        split = split_windows(len(series.values), self.window, self.horizon, 0, self.val_fraction,
                              self.difference, "LSTMForecaster.fit")
        if self.level > self.window:
            raise DataError(f"LSTMForecaster: level {self.level} averages more points than the window of "
                            f"{self.window}; expected level <= window")
        self.scaler_ = SeriesScaler(log=self.log, difference=self.difference,
                                    level=self.level).fit(series.values[:split.fit_end])
        z = self.scaler_.transform(series.values)
        train = make_windows(z, split.train, self.window, self.horizon, self.difference, self.scaler_)
        val = (make_windows(z, split.val, self.window, self.horizon, self.difference, self.scaler_)
               if len(split.val) else None)
        self.model_ = self._config()
        self.model_.fit(train, val)
        self.series_ = series
        return self

    def predict(self, horizon: int | None = None) -> np.ndarray:
        """The ``horizon`` points (default H) after the fitted series: (horizon,) or (horizon, S)."""
        if not hasattr(self, "model_"):
            raise DataError("LSTMForecaster.predict: call fit() first")
        steps = self.horizon if horizon is None else int(horizon)
        out = forecast_path(self.model_.predict, self.scaler_, self.series_.values, steps, self.window,
                            self.horizon)
        return out[:, 0] if self._univariate else out

    def baselines(self, horizon: int | None = None) -> dict[str, np.ndarray]:
        """The naive and seasonal-naive forecasts of the same points, shaped as ``predict``'s."""
        steps = self.horizon if horizon is None else int(horizon)
        values = self.series_.values
        out = {"naive": naive_forecast(values, steps),
               "seasonal_naive": seasonal_naive_forecast(values, steps, self.season)}
        return {k: v[:, 0] for k, v in out.items()} if self._univariate else out



class SavedForecaster:
    """A forecaster's model folder as ``lstmkit.load`` gives it: ``forecast`` (its own verb), plus ``predict``
    and ``evaluate`` on prepared windows as every sequence model has them (``lstmkit.Model``).

    Example::

        model = lstmkit.load("runs/airline")
        result = model.forecast(24)                  # 24 months after the series' end, on the original scale
        result.forecast, result.baselines["seasonal_naive"]
        model.forecast(backtest=True).metrics["lstm"]["mase"]
    """

    def __init__(self, folder: str | Path, model: Any) -> None:
        self.folder, self.model = Path(folder), model

    def forecast(self, horizon: int | None = None, input: str | Path | None = None,
                 backtest: bool = False, statistical: bool = False) -> ForecastResult:
        """``forecast_from_model`` on this folder: the next ``horizon`` values (default the model's own),
        after the model's series or the series file ``input``; ``backtest`` holds the last ones out;
        ``statistical`` adds AutoETS and AutoARIMA to the baselines."""
        return forecast_from_model(self.folder, horizon=horizon, input=input, backtest=backtest,
                                   statistical=statistical)

    def predict(self, x: Any, lengths: Any = None) -> np.ndarray:
        return self.model.predict(x, lengths)

    def evaluate(self, data: Any) -> dict[str, Any]:
        return self.model.evaluate(data)
