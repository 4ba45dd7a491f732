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
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmkit.config import Config
from lstmkit.data.base import SourceData
from lstmkit.data.pooled import PooledForecastSpec
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


if TYPE_CHECKING:
    from lstmkit.report.plots import ForecastPanel

log = logging.getLogger(__name__)

METHODS = ("lstm", *BASELINES, *STATISTICAL)
"""Every method a run's evaluation can score; the statistical ones only when their libraries are installed."""
METRICS = ("mae", "rmse", "mape", "smape", "mase")
METRIC_LABELS = {"mae": "MAE", "rmse": "RMSE", "mape": "MAPE", "smape": "sMAPE", "mase": "MASE"}
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
    series_times: list[list[str]] | None = None
    """A pooled run's: each series' own k * H test times (``times`` is then the first series')."""
    per_series: dict[str, dict[str, dict[str, float]]] | None = None
    """A pooled run's: each series' own metrics, per method."""


def backtest(spec: ForecastSpec | PooledForecastSpec, outputs: np.ndarray, statistical: bool = True) -> Backtest:
    """Score the forecaster's scaled ``outputs`` (k, H * S) for the test windows of ``spec`` beside the
    naive, seasonal-naive and (``statistical`` and installed) AutoETS and AutoARIMA forecasts from the same
    histories, all on the original scale.

    A pooled spec (``lstmkit.data.pooled``) has ``outputs`` (S * k, H), series by series; each series is
    scored on its own history and test part, and each metric is the mean of the series' own, as the M3 and M4
    competitions average them (RMSE the root of the mean square). A series whose value is undefined (a failed
    statistical fit, a MASE scale of 0) is left out of that mean, and a note says over how many it is.
    """
    parts = spec.parts() if isinstance(spec, PooledForecastSpec) else [spec]
    k = len(parts[0].split.test)
    outputs = np.asarray(outputs).reshape(len(parts), k, -1)
    results = [_baselines(part, out) for part, out in zip(parts, outputs)]
    notes: list[str] = []
    if statistical:
        notes = _add_statistical(parts, results)
    else:
        notes.append("AutoETS and AutoARIMA were not fitted ([train] statistical = false)")
    if not isinstance(spec, PooledForecastSpec):
        results[0].notes = notes
        return results[0]
    return _pooled(spec, results, notes)


def _baselines(spec: ForecastSpec, outputs: np.ndarray) -> Backtest:
    """The LSTM, naive and seasonal-naive forecasts of the test windows of one ``spec``, and their metrics."""
    values, horizon, season = spec.series.values, spec.horizon, spec.season
    origins = spec.split.test
    actual = np.stack([values[o:o + horizon] for o in origins])  # (k, H, S)
    forecasts = {
        "lstm": spec.to_values(outputs, origins),
        "naive": np.stack([naive_forecast(values[:o], horizon) for o in origins]),
        "seasonal_naive": np.stack([seasonal_naive_forecast(values[:o], horizon, season) for o in origins]),
    }
    times = [spec.series.times[o + h] for o in origins for h in range(horizon)]
    result = Backtest(name=spec.name, names=list(spec.series.names), times=times, actual=actual,
                      forecasts=forecasts, metrics={}, horizon=horizon, season=season, window=spec.window)
    _score(result, values[:spec.split.test_start])
    return result


def _score(result: Backtest, insample: np.ndarray) -> None:
    s = insample.shape[1]
    result.metrics = {method: forecast_metrics(result.actual.reshape(-1, s), f.reshape(-1, s), insample,
                                               result.season) for method, f in result.forecasts.items()}


def _add_statistical(parts: list[ForecastSpec], results: list[Backtest]) -> list[str]:
    """AutoETS and AutoARIMA fitted before every test window of every part, all in one pool of processes,
    added to ``results`` with their metrics; returns the notes."""
    started, available = time.perf_counter(), statistical_available()
    histories = [part.series.values[:o] for part in parts for o in part.split.test]
    if available:
        count = sum(part.series.values.shape[1] for part in parts)
        k = len(parts[0].split.test)
        windows = "the test window" if k == 1 else f"each of the {k} test windows"
        log.info("fitting AutoETS and AutoARIMA to %d series before %s (season %d); "
                 "[train] statistical = false skips them", count, windows, parts[0].season)
    names = [list(part.series.names) for part in parts for _ in part.split.test]
    runs = statistical_forecasts_many(histories, parts[0].horizon, parts[0].season, names=names)
    if available:
        log.info("AutoETS and AutoARIMA took %.1f s", time.perf_counter() - started)
    notes: list[str] = []
    for _, window_notes in runs:
        notes += [note for note in window_notes if note not in notes]
    first = 0
    for part, result in zip(parts, results):
        mine = runs[first:first + len(part.split.test)]
        first += len(part.split.test)
        for method in STATISTICAL:
            if all(method in found for found, _ in mine):
                result.forecasts[method] = np.stack([found[method] for found, _ in mine])  # (k, H, S)
        _score(result, part.series.values[:part.split.test_start])
    return notes


def _pooled(spec: PooledForecastSpec, results: list[Backtest], notes: list[str]) -> Backtest:
    """One ``Backtest`` of every series of a pooled run: arrays (k, H, S) with series as columns, each with its
    own test times (``series_times``), and metrics over all of them."""
    methods = [m for m in results[0].forecasts if all(m in r.forecasts for r in results)]
    per_series = {r.names[0]: r.metrics for r in results}
    metrics = {}
    for method in methods:
        each = {name: np.array([r.metrics[method][name] for r in results]) for name in METRICS}
        metrics[method] = {name: _mean_defined(name, values) for name, values in each.items()}
        note = _undefined_note(LABELS[method], each)
        if note:
            notes.append(note)
    notes += [f"left out: {reason}" for reason in spec.skipped]
    return Backtest(name=spec.name, names=[r.names[0] for r in results], times=results[0].times,
                    actual=np.concatenate([r.actual for r in results], axis=2),
                    forecasts={m: np.concatenate([r.forecasts[m] for r in results], axis=2) for m in methods},
                    metrics=metrics, horizon=spec.horizon, season=spec.season, window=spec.window, notes=notes,
                    series_times=[r.times for r in results], per_series=per_series)


def spread_by_rank(scores: list[float], count: int) -> tuple[list[int], list[int]]:
    """``(ranked, picks)``: the indices of the defined ``scores`` from lowest to highest (every index in order
    if none is defined), and ``count`` evenly spaced ranks into it, the first and the last included."""
    values = np.asarray(scores, dtype=float)
    ranked = [int(i) for i in np.argsort(values, kind="stable") if not np.isnan(values[i])] or list(range(len(values)))
    return ranked, sorted({int(r) for r in np.linspace(0, len(ranked) - 1, num=min(count, len(ranked))).round()})


def pooled_panels(spec: PooledForecastSpec, result: Backtest) -> list[ForecastPanel]:
    """The series a pooled run's ``forecast.png`` shows: ``MAX_PANELS`` of them, from the LSTM's best MASE to its
    worst at evenly spaced ranks (the series whose MASE is defined; all series by order if none is), each
    titled with its name, rank and MASE beside seasonal naive's."""
    from lstmkit.report.plots import MAX_PANELS, ForecastPanel

    parts = spec.parts()
    ranked, picks = spread_by_rank([result.per_series[name]["lstm"]["mase"] for name in result.names], MAX_PANELS)
    panels = []
    for rank in picks:
        i = ranked[rank]
        part, own = parts[i], result.per_series[result.names[i]]
        start = part.split.test_start
        title = (f"{result.name}: series '{result.names[i]}', LSTM MASE {own['lstm']['mase']:.3g} (rank {rank + 1} of "
                 f"{len(ranked)}, best first; seasonal naive {own['seasonal_naive']['mase']:.3g})")
        panels.append(ForecastPanel(title, list(part.series.times[:start]), part.series.values[:start, 0],
                                    list(result.series_times[i]), result.forecasts["lstm"][..., i].reshape(-1),
                                    result.actual[..., i].reshape(-1),
                                    {LABELS[b]: f[..., i].reshape(-1) for b, f in result.forecasts.items()
                                     if b != "lstm"}))
    return panels


def _mean_defined(name: str, values: np.ndarray) -> float:
    """The mean over the series of one metric, leaving out the series where it is undefined (NaN); RMSE is
    the root of the mean square. NaN when no series has it."""
    defined = values[~np.isnan(values)]
    if not len(defined):
        return float("nan")
    return float(np.sqrt((defined ** 2).mean())) if name == "rmse" else float(defined.mean())


def _undefined_note(label: str, each: dict[str, np.ndarray]) -> str:
    """Which of a method's pooled metrics are means over fewer than all the series, and why; "" if none."""
    total = len(next(iter(each.values())))
    counts: dict[int, list[str]] = {}
    for name, values in each.items():
        counts.setdefault(int((~np.isnan(values)).sum()), []).append(METRIC_LABELS[name])
    if list(counts) == [total]:
        return ""
    parts = [f"{_listed(names)} {'is' if len(names) == 1 else 'are'} the mean over {n} of {total} series"
             for n, names in sorted(counts.items()) if n < total]
    failed = np.isnan(each["mae"])  # MAE is defined for every forecast that was made
    reasons = [text for text, seen in (
        ("a fit that failed, as noted", failed.any()),
        ("a history constant at lag m, whose MASE scale is 0", (np.isnan(each["mase"]) & ~failed).any()),
        ("an actual value of 0, which MAPE divides by", (np.isnan(each["mape"]) & ~failed).any())) if seen]
    return f"{label}: {'; '.join(parts)} (the others' are undefined: {'; '.join(reasons)})"


def _listed(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def format_backtest(result: Backtest) -> str:
    """The methods side by side as plain text, with the LSTM's verdict (by MASE) against each other method."""
    k = result.actual.shape[0]
    pooled = " by one pooled model" if result.per_series is not None else ""
    each = " of each" if result.per_series is not None else ""
    lines = [(f"{result.name}: {result.horizon}-step forecasts of {len(result.names)} series{pooled} from windows "
              f"of {result.window}, over the last {k * result.horizon} points{each} ({k} test window{'s' * (k > 1)}); "
              f"season m = {result.season}"),
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
                      forecasts: dict[str, np.ndarray], horizon: int,
                      series_times: list[list[str]] | None = None) -> list[list[Any]]:
    """Rows of ``FORECAST_COLUMNS`` from arrays (k, H, S) (``actual`` may be None); ``series_times`` gives
    each series its own times (a pooled run's), else all share ``times``."""
    k, h, s = forecasts["lstm"].shape
    rows = []
    for w in range(k):
        for step in range(h):
            for j in range(s):
                row = [(times if series_times is None else series_times[j])[w * horizon + step], names[j], w,
                       step + 1,
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
    from lstmkit.report.plots import plot_forecast_panels, plot_series_forecast

    spec: ForecastSpec | PooledForecastSpec = source.forecast
    result = backtest(spec, model.predict(source.test.x).reshape(len(source.test), -1),
                      statistical=config.train.statistical)
    text = format_backtest(result)
    (out_dir / "evaluation.txt").write_text(text + "\n", encoding="utf-8")
    report = {"data": result.name, "series": result.names, "window": result.window, "horizon": result.horizon,
              "season": result.season, "test_windows": int(result.actual.shape[0]), "test_times": result.times,
              "metrics": result.metrics, "notes": result.notes}
    if result.per_series is not None:
        report.update(pooled=True, series_test_times=result.series_times, per_series=result.per_series)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_forecast_csv(out_dir / "forecast.csv",
                       forecast_csv_rows(result.times, result.names, result.actual, result.forecasts, result.horizon,
                                         result.series_times))
    last = max(4 * len(result.times), 3 * spec.window)
    if isinstance(spec, PooledForecastSpec):
        plot_forecast_panels(out_dir / "forecast.png", pooled_panels(spec, result), last)
    else:
        start, s = spec.split.test_start, spec.series.values.shape[1]
        plot_series_forecast(out_dir / "forecast.png", spec.series.times[:start], spec.series.values[:start],
                             result.times, result.forecasts["lstm"].reshape(-1, s), actual=result.actual.reshape(-1, s),
                             baselines={LABELS[b]: f.reshape(-1, s) for b, f in result.forecasts.items() if b != "lstm"},
                             names=result.names, title=f"{result.name}: test forecast", last=last)
    log.debug("%s", text)
    metrics: dict[str, Any] = {}
    for method in result.forecasts:
        prefix = "test_" if method == "lstm" else f"test_{method}_"
        metrics.update({prefix + name: result.metrics[method][name] for name in METRICS})
    metrics["test_loss"] = float(model.evaluate(source.test)["loss"])
    return metrics
