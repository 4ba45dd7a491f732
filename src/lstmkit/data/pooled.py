"""Pooled forecasting data: one network trained on the windows of many series (a *global* model).

``[data] pooled = true`` on the ``series`` source reads every series of the file with its own length and
times (``read_series_list``), cuts each into windows by its own time split (``split_windows``), and pools
the samples of all of them. The network has one input channel and H outputs, whichever series a window
comes from; this is how ES-RNN, N-BEATS and DeepAR learn from thousands of series at once, where one
series of a hundred points teaches little.

For series i with values y_i (T_i points), windows of W points and horizons of H::

    z_i = (Δ_d log y_i - μ) / σ                 μ the mean of every series' training points, σ their
                                                 std within their own series (``fit_many``)
    l_n = mean(z_i[o - m : o])                   the window's level (m = ``level``; 0 without one)
    x_n = z_i[o - W : o] - l_n,   y_n = z_i[o : o + H] - l_n

``log`` makes series of different scales comparable (a change of log y is a relative change), and the
window level or the differences (``level`` or ``difference``) take out each series' location, so both
are required. The split is each series' own (``lstmkit.data.windows``): its last ``test_windows * H``
points are its test part, the latest ``val_fraction`` of its remaining windows validate (none, for a series
too short to give one up). A series too short for any training window is still forecast and scored, as a
global model forecasts series it never trained on; one with fewer than W (+ d) points before its test part
cannot be, and is left out, and the run says which (``PooledForecastSpec.skipped``).

A pooled model is saved as a one-series forecaster with ``"pooled": true`` in its meta: ``lstmkit
forecast`` forecasts every series of a file with it, and the server and the ONNX export take one history
of one series at a time, as for any one-series forecaster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmkit.data.base import ArrayDataset, SourceData
from lstmkit.data.timeseries import Series
from lstmkit.data.windows import (
    ForecastSpec,
    SeriesScaler,
    WindowSplit,
    make_windows,
    scaler_for,
    split_windows,
)
from lstmkit.errors import DataError

__all__ = ["POOLED_SERIES_NAME", "PooledForecastSpec", "pooled_forecast_source"]

log = logging.getLogger(__name__)

POOLED_SERIES_NAME = "value"
"""The name of a pooled model's one input channel in its meta (it reads whichever series it is given)."""


@dataclass
class PooledForecastSpec:
    """The series, scaling and splits of a pooled run: ``parts()`` gives each series' own ``ForecastSpec``.

    The samples of ``SourceData.test`` are the test windows of ``series[0]``, then of ``series[1]``, ...,
    ``test_windows`` each, in time order.
    """

    name: str
    series: list[Series]
    """The series that were windowed (one column each), in the file's order."""
    window: int
    horizon: int
    season: int
    scaler: SeriesScaler
    splits: list[WindowSplit]
    skipped: list[str] = field(default_factory=list)
    """Why each series too short to forecast (less than one window before its test part) was left out."""
    extra: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> list[ForecastSpec]:
        """One ``ForecastSpec`` per series, sharing the scaler: each turns its own outputs into values."""
        return [ForecastSpec(name=self.name, series=s, window=self.window, horizon=self.horizon, season=self.season,
                             scaler=self.scaler, split=split) for s, split in zip(self.series, self.splits)]

    def to_meta(self) -> dict[str, Any]:
        """A one-series forecaster's meta, marked ``pooled``, with how many series it learnt from (those with a
        training window)."""
        return {"window": self.window, "horizon": self.horizon, "season": self.season,
                "series": [POOLED_SERIES_NAME], "scaler": self.scaler.to_dict(), "pooled": True,
                "trained_series": sum(1 for split in self.splits if len(split.train)), **self.extra}


def _check_representation(config: Any, name: str) -> None:
    if not config.log:
        raise DataError(f"{name}: [data] pooled = true needs log = true, so that series of different scales "
                        "share one network (a change of log y is a relative change); got log = false")
    if not (config.level or config.difference):
        raise DataError(f"{name}: [data] pooled = true needs level > 0 or difference > 0, so that each window "
                        "is free of its series' level; got level = 0 and difference = 0 (level = the season "
                        "is the usual choice)")


def _split(length: int, window: int, horizon: int, config: Any, label: str) -> WindowSplit:
    """A series' own split: with validation windows if it can spare them, else training windows only, else (a
    global model forecasts series it never trained on) only its test windows.

    Raises:
        DataError: if the series has fewer than ``window`` (+ ``difference``) points before its test part.
    """
    try:
        return split_windows(length, window, horizon, config.test_windows, config.val_fraction, config.difference,
                             label)
    except DataError:
        pass
    try:
        return split_windows(length, window, horizon, config.test_windows, 0.0, config.difference, label)
    except DataError:
        pass
    test_start = length - config.test_windows * horizon
    needed = config.difference + window + config.test_windows * horizon
    if test_start < config.difference + window:
        raise DataError(f"{label}: expected at least {needed} points for window {window} + {config.test_windows} "
                        f"test window(s) of {horizon}" + (f" + difference {config.difference}" if config.difference
                                                           else "") + f", got {length}")
    none = np.arange(0)
    return WindowSplit(train=none, val=none, test=test_start + horizon * np.arange(config.test_windows),
                       fit_end=test_start, test_start=test_start)


def pooled_forecast_source(series: list[Series], config: Any, name: str, window: int, horizon: int,
                           season: int) -> SourceData:
    """A ``SourceData`` of the pooled windows of ``series`` (one-column ``Series`` of any lengths).

    Raises:
        DataError: for a representation that is not scale- and level-free, a level longer than the window,
            or when no series has a training window.
    """
    window, horizon, season = config.window or window, config.horizon or horizon, config.season or season
    _check_representation(config, name)
    if config.level > window:
        raise DataError(f"{name}: [data] level = {config.level} averages more points than the window of {window}; "
                        "expected level <= window")
    kept, splits, skipped = [], [], []
    for s in series:
        label = f"series {s.names[0]!r}"
        try:
            if config.log and (s.values + config.log_offset <= 0).any():
                wanted = (f"values above {-config.log_offset:g} for log = true, log_offset = {config.log_offset:g}"
                          if config.log_offset else "positive values for log = true (log_offset = 1 takes zeros)")
                raise DataError(f"{label}: expected {wanted}, got {float(s.values.min()):g}")
            split = _split(len(s.values), window, horizon, config, label)
        except DataError as exc:
            skipped.append(str(exc))
            continue
        kept.append(s)
        splits.append(split)
    if kept and not any(len(split.train) for split in splits):
        raise DataError(f"{name}: expected a series with a training window (window {window} + horizon {horizon} "
                        f"before its test part), got none among the {len(kept)} series long enough to forecast")
    if not kept:
        reasons = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise DataError(f"{name}: expected at least one series long enough to train and test on, got none of "
                        f"{len(series)} ({reasons})")
    if skipped:
        log.warning("%s: left out %d of %d series (too short for window %d + %d test window(s) of %d, or not "
                    "positive for the log); the first: %s", name, len(skipped), len(series), window,
                    config.test_windows, horizon, skipped[0])
    scaler = scaler_for(config, name)
    scaler.fit_many([s.values[:split.fit_end] for s, split in zip(kept, splits)], within=True)
    d = config.difference
    scaled = [scaler.transform(s.values) for s in kept]  # z_i[j] is time j + d

    def windows(pick: str) -> ArrayDataset:
        parts = [make_windows(z, getattr(split, pick), window, horizon, offset=d, scaler=scaler)
                 for z, split in zip(scaled, splits)]
        return ArrayDataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                            targets="values")

    spec = PooledForecastSpec(name=name, series=kept, window=window, horizon=horizon, season=season,
                              scaler=scaler, splits=splits, skipped=skipped)
    val = windows("val")
    return SourceData(train=windows("train"), test=windows("test"), label_names=[], image_shape=None,
                      pixel_max=None, name=name, val=val if len(val) else None, forecast=spec)
