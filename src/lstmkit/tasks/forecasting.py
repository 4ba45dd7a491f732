"""Forecasting on top of ``Model``: forecasts from a model folder, and the scikit-learn style ``LSTMForecaster``.

``lstmkit forecast`` forecasts past the end of a series (or of a user's file) with a forecaster's model folder,
beside the naive baselines and, if asked, AutoETS and AutoARIMA; a run's own test evaluation is
``lstmkit.tasks.forecast_evaluation``.

Example::

    result = forecast_from_model("runs/airline/model", horizon=24)        # 24 months past the data
    write_forecast(result, "airline.csv", "airline.png")

    est = LSTMForecaster(window=24, horizon=12, season=12, log=True, difference=12).fit(y)   # y: (T,)
    est.predict(12)                                                                          # (12,)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.config import Config
from lstmkit.data.timeseries import Series, read_series, read_series_list
from lstmkit.data.windows import SeriesScaler, make_windows, scaler_for, split_windows
from lstmkit.errors import DataError, ModelFolderError
from lstmkit.evaluation.forecasting import (
    forecast_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from lstmkit.evaluation.statistical import (
    statistical_available,
    statistical_forecasts_many,
)
from lstmkit.tasks.forecast_evaluation import (
    LABELS,
    forecast_csv_rows,
    spread_by_rank,
    write_forecast_csv,
)

__all__ = ["ForecastResult", "LSTMForecaster", "SavedForecaster", "forecast_each_from_model", "forecast_from_model",
           "write_forecast"]

log = logging.getLogger(__name__)


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


FORECAST_BATCH = 1024
"""Histories per network call in ``forecast_paths``: one call for a few, bounded memory for a million."""


def last_window(scaler: SeriesScaler, history: np.ndarray, window: int) -> np.ndarray:
    """The scaled last window ``(W, S)`` of ``history`` (T, S), the input of its first forecast.

    Raises:
        DataError: if the history is shorter than the window (+ the differencing lag), or the log refuses it.
    """
    z = scaler.transform(history)  # (T - d, S)
    if len(z) < window:
        raise DataError(f"forecast: expected at least {window + scaler.difference} points of history "
                        f"(window {window}" + (f" + difference {scaler.difference}" if scaler.difference else "")
                        + f"), got {len(history)}")
    return z[-window:]


def forecast_paths(predict: Any, scaler: SeriesScaler, histories: list[np.ndarray], steps: int, window: int,
                   horizon: int) -> list[np.ndarray]:
    """Values ``(steps, S)`` after each of ``histories`` (each (T_i, S)): direct H-step forecasts, fed back for
    ``steps > H``, every history's window in one batch (``FORECAST_BATCH`` at a time).

    ``predict`` maps scaled windows ``(N, W, S)`` to scaled outputs ``(N, H * S)``; with a window level
    (``SeriesScaler.level``) it sees each window less its level, which is added back to its outputs::

        w_0 = z[-W:],   l_j = mean(w_j[-m:]),   ẑ_j = predict(w_j - l_j) + l_j,   w_{j+1} = [w_j, ẑ_j][-W:]

    and the ``ẑ`` of all chunks, cut to ``steps``, go back to values through ``SeriesScaler.inverse``.
    """
    recent = np.stack([last_window(scaler, h, window) for h in histories])  # (N, W, S)
    n, s = len(recent), recent.shape[2]
    chunks, made = [], 0
    while made < steps:
        level = np.stack([scaler.window_level(w) for w in recent])[:, None, :]  # (N, 1, S), zeros without a level
        x = (recent - level).astype(np.float32)
        out = np.concatenate([np.asarray(predict(x[i:i + FORECAST_BATCH]), dtype=np.float64)
                              for i in range(0, n, FORECAST_BATCH)])
        ahead = out.reshape(n, horizon, s) + level  # (N, H, S)
        chunks.append(ahead)
        made += horizon
        recent = np.concatenate([recent, ahead], axis=1)[:, -window:]
    z = np.concatenate(chunks, axis=1)[:, :steps]
    return [scaler.inverse(z[i], h) for i, h in enumerate(histories)]


def forecast_path(predict: Any, scaler: SeriesScaler, history: np.ndarray, steps: int, window: int,
                  horizon: int) -> np.ndarray:
    """Values ``(steps, S)`` after one ``history`` (T, S); see ``forecast_paths``."""
    return forecast_paths(predict, scaler, [history], steps, window, horizon)[0]


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


def _model_series(config: Config, meta: dict[str, Any], input: str | Path | None) -> list[Series]:
    """The series to forecast: a pooled model's one by one, each with its own times; another model's as the
    one aligned ``Series`` it was trained on."""
    from lstmkit.data.forecast_sources import (
        load_config_series,
        load_config_series_list,
    )

    dc = config.data
    if meta.get("pooled"):
        if input is None:
            return load_config_series_list(dc)
        return read_series_list(input, time_column=dc.time_column, format=dc.format, id_column=dc.id_column,
                                value_column=dc.value_column)
    names = list(meta["series"])
    if input is None:
        return [load_config_series(dc)]
    series = read_series(input, time_column=dc.time_column, format=dc.format, id_column=dc.id_column,
                         value_column=dc.value_column)
    if all(n in series.names for n in names):
        return [Series(series.values[:, [series.names.index(n) for n in names]], series.times, names)]
    if len(series.names) == len(names):
        return [series]
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

    A pooled model (``[data] pooled = true``) forecasts one series here; ``forecast_each_from_model``
    forecasts every series of a file.

    Raises:
        ModelFolderError: if the folder is not a forecaster's.
        DataError: if the series is too short or does not match the model's series, or a pooled model is
            given several series.
    """
    results = forecast_each_from_model(model_dir, horizon, input, backtest, statistical)
    if len(results) > 1:
        raise DataError(f"forecast: the pooled model {model_dir} forecasts one series at a time and got "
                        f"{len(results)}; forecast_each_from_model (and lstmkit forecast) forecasts each of them")
    return results[0]


def forecast_each_from_model(model_dir: str | Path, horizon: int | None = None, input: str | Path | None = None,
                             backtest: bool = False, statistical: bool = False) -> list[ForecastResult]:
    """``forecast_from_model`` for every series a pooled model is given, one ``ForecastResult`` each (a model
    of aligned series gives one result for all of them). The statistical fits of all series run side by side."""
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

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        return loaded.module(loaded.prepare(x)).numpy()

    results, skipped = [], []
    for series in _model_series(loaded.config, meta, input):
        values, times = series.values, series.times
        try:
            if backtest:
                if len(values) <= steps:
                    raise DataError(f"forecast --backtest: expected more than {steps} points to hold out {steps}, "
                                    f"got {len(values)}")
                values, actual, future_times, times = values[:-steps], values[-steps:], times[-steps:], times[:-steps]
            else:
                actual, future_times = None, _future_times(times, steps)
            last_window(scaler, values, window)  # checks the history before the batch
        except DataError as exc:
            if not meta.get("pooled"):
                raise
            skipped.append(f"series {series.names[0]!r} left out: {exc}")
            continue
        baselines = {"naive": naive_forecast(values, steps),
                     "seasonal_naive": seasonal_naive_forecast(values, steps, season)}
        results.append(ForecastResult(names=list(series.names), times=list(times), history=values,
                                      future_times=future_times, forecast=np.empty(0), baselines=baselines,
                                      actual=actual))
    if not results:  # a pooled model given only series too short to forecast
        raise DataError(f"forecast: no series long enough to forecast ({'; '.join(skipped[:3])})")
    forecasts = forecast_paths(predict, scaler, [r.history for r in results], steps, window, model_horizon)
    for result, forecast in zip(results, forecasts):
        result.forecast = forecast
    if skipped:
        log.warning("forecast: %d of %d series are too short and were left out; the first: %s", len(skipped),
                    len(skipped) + len(results), skipped[0])
    if statistical:
        if statistical_available():
            log.info("fitting AutoETS and AutoARIMA to %d series (season %d); --no-statistical skips them",
                     sum(r.history.shape[1] for r in results), season)
        histories, names = [r.history for r in results], [r.names for r in results]
        for result, (found, notes) in zip(results, statistical_forecasts_many(histories, steps, season,
                                                                               names=names)):
            result.baselines.update(found)
            result.notes = notes
    results[0].notes = [*skipped, *results[0].notes]
    for result in results:
        if result.actual is not None:
            methods = {"lstm": result.forecast, **result.baselines}
            result.metrics = {m: forecast_metrics(result.actual, f, result.history, season) for m, f in methods.items()}
    return results


def write_forecast(result: ForecastResult | list[ForecastResult], csv_path: str | Path,
                   png_path: str | Path | None = None, title: str = "Forecast") -> None:
    """Write ``result`` (or several, one after another) as a CSV of ``forecast_evaluation.FORECAST_COLUMNS``
    (window 0) and, if asked, a PNG plot (of one result's series, or of the first ``MAX_PANELS`` results, one
    series each)."""
    from lstmkit.report.plots import (
        MAX_PANELS,
        ForecastPanel,
        plot_forecast_panels,
        plot_series_forecast,
    )

    results = result if isinstance(result, list) else [result]
    rows = []
    for one in results:
        steps = len(one.forecast)
        forecasts = {"lstm": one.forecast[None], **{b: v[None] for b, v in one.baselines.items()}}
        rows += forecast_csv_rows(one.future_times, one.names, None if one.actual is None else one.actual[None],
                                  forecasts, steps)
    write_forecast_csv(Path(csv_path), rows)
    if png_path is None:
        return
    last = max(4 * len(results[0].forecast), 48)
    if len(results) == 1:
        one = results[0]
        plot_series_forecast(png_path, one.times, one.history, one.future_times, one.forecast, actual=one.actual,
                             baselines={LABELS[b]: v for b, v in one.baselines.items()}, names=one.names,
                             title=title, last=last)
        return
    if all(one.metrics for one in results):  # a backtest: from the best MASE to the worst, as a pooled run shows
        ranked, picks = spread_by_rank([one.metrics["lstm"]["mase"] for one in results], MAX_PANELS)
        shown = []
        for rank in picks:
            one = results[ranked[rank]]
            where = f"LSTM MASE {one.metrics['lstm']['mase']:.3g}, rank {rank + 1} of {len(ranked)}, best first"
            shown.append((one, where))
    else:
        shown = [(one, f"{i + 1} of {len(results)}") for i, one in enumerate(results[:MAX_PANELS])]
    panels = [ForecastPanel(f"{title}: series '{one.names[0]}' ({where})", list(one.times), one.history[:, 0],
                            list(one.future_times), one.forecast[:, 0], None if one.actual is None else one.actual[:, 0],
                            {LABELS[b]: v[:, 0] for b, v in one.baselines.items()})
              for one, where in shown]
    plot_forecast_panels(png_path, panels, last)


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
        log_offset: with ``log``, model ``log(y + log_offset)``; 1 takes series that hold zeros.
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

        pooled = LSTMForecaster(window=6, horizon=6, log=True, level=1).fit([y1, y2, y3])   # any lengths
        pooled.predict()                # [(6,), (6,), (6,)]: one network, each series' own next 6
    """

    def __init__(self, window: int = 12, horizon: int = 1, season: int = 1, log: bool = False,
                 difference: int = 0, val_fraction: float = 0.0, config: Any = None,
                 overrides: Iterable[str] = (), level: int = 0, log_offset: float = 0.0) -> None:
        self.window, self.horizon, self.season = window, horizon, season
        self.log, self.difference, self.val_fraction = log, difference, val_fraction
        self.level, self.log_offset = level, log_offset
        self.config, self.overrides = config, list(overrides)

    def _config(self) -> Any:
        from lstmkit.tasks.sequence_model import Model

        base = {"model": {"task": "forecaster", "hidden_size": 32},
                "train": {"epochs": 100, "batch_size": 16, "lr": 1e-2, "progress": False, "tensorboard": False}}
        if self.config is None:
            return Model.from_config(base, self.overrides)
        return Model.from_config(self.config, [*self.overrides, "model.task=forecaster"])

    def fit(self, y: Any) -> LSTMForecaster:
        """Fit on ``y``: (T,) or (T, S) values, a pandas Series or a DataFrame (one column per series), or a list
        of 1-D series of any lengths, which trains one pooled model on all of them (``lstmkit.data.pooled``;
        it needs ``log=True`` and a ``level`` or ``difference``); ``predict`` then gives a list as well."""
        if isinstance(y, list):
            return self._fit_pooled(y)
        self._pooled = False
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
        self.scaler_ = scaler_for(self._data(), "LSTMForecaster.fit").fit(series.values[:split.fit_end])
        z = self.scaler_.transform(series.values)
        train = make_windows(z, split.train, self.window, self.horizon, self.difference, self.scaler_)
        val = (make_windows(z, split.val, self.window, self.horizon, self.difference, self.scaler_)
               if len(split.val) else None)
        self.model_ = self._config()
        self.model_.fit(train, val)
        self.series_ = series
        return self

    def _data(self) -> Any:
        """The estimator's settings as the ``[data]`` table the sources read."""
        from types import SimpleNamespace

        return SimpleNamespace(window=self.window, horizon=self.horizon, season=self.season, log=self.log,
                               log_offset=self.log_offset, difference=self.difference, level=self.level,
                               normalize=True, test_windows=0, val_fraction=self.val_fraction)

    def _fit_pooled(self, ys: list[Any]) -> LSTMForecaster:
        from lstmkit.data.pooled import pooled_forecast_source

        series = []
        for i, y in enumerate(ys):
            values = np.asarray(y, dtype=np.float64)
            if values.ndim != 1:
                raise DataError(f"LSTMForecaster.fit: expected a list of 1-D series, got shape {values.shape} at {i}")
            series.append(Series.from_array(values, [str(i)]))
        source = pooled_forecast_source(series, self._data(), "LSTMForecaster.fit", self.window, self.horizon,
                                        self.season)
        skipped = source.forecast.skipped
        if skipped:  # predict() answers every series it was given, so none may be left out
            more = f"; and {len(skipped) - 2} more" if len(skipped) > 2 else ""
            raise DataError(f"LSTMForecaster.fit: {len(skipped)} of {len(series)} series cannot be forecast: "
                            f"{'; '.join(skipped[:2])}{more}")
        self.scaler_ = source.forecast.scaler
        self.model_ = self._config()
        self.model_.fit(source.train, source.val)
        self._pooled, self.series_ = True, series
        return self

    def predict(self, horizon: int | None = None) -> np.ndarray | list[np.ndarray]:
        """The ``horizon`` points (default H) after the fitted series: (horizon,) or (horizon, S); after a
        pooled fit, a list of (horizon,) forecasts, one per series."""
        if not hasattr(self, "model_"):
            raise DataError("LSTMForecaster.predict: call fit() first")
        steps = self.horizon if horizon is None else int(horizon)
        if self._pooled:
            return [f[:, 0] for f in forecast_paths(self.model_.predict, self.scaler_, [s.values for s in self.series_],
                                                    steps, self.window, self.horizon)]
        out = forecast_path(self.model_.predict, self.scaler_, self.series_.values, steps, self.window,
                            self.horizon)
        return out[:, 0] if self._univariate else out

    def baselines(self, horizon: int | None = None) -> dict[str, np.ndarray]:
        """The naive and seasonal-naive forecasts of the same points, shaped as ``predict``'s."""
        steps = self.horizon if horizon is None else int(horizon)
        if self._pooled:
            return {"naive": [naive_forecast(s.values, steps)[:, 0] for s in self.series_],
                    "seasonal_naive": [seasonal_naive_forecast(s.values, steps, self.season)[:, 0] for s in self.series_]}
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
        lstmkit.load("runs/m1-yearly").forecast_each()  # a pooled model: every series of its file
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

    def forecast_each(self, horizon: int | None = None, input: str | Path | None = None,
                      backtest: bool = False, statistical: bool = False) -> list[ForecastResult]:
        """``forecast_each_from_model`` on this folder: a pooled model's forecast of every series, one result each."""
        return forecast_each_from_model(self.folder, horizon=horizon, input=input, backtest=backtest,
                                        statistical=statistical)

    def predict(self, x: Any, lengths: Any = None) -> np.ndarray:
        return self.model.predict(x, lengths)

    def evaluate(self, data: Any) -> dict[str, Any]:
        return self.model.evaluate(data)
