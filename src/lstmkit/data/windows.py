"""Forecasting data: scale a series on its training part, cut it into windows, split it by time.

A series ``y`` of T points (S series side by side, shape (T, S)) becomes samples that map an input window
of W points to the next H points::

    x_n = z[o_n - W : o_n]          (W, S)    the window before origin o_n
    y_n = z[o_n : o_n + H]          (H, S)    flattened to H * S targets, step-major: index h * S + s

where ``z`` is the scaled series (``SeriesScaler``): optionally ``log(y + c)`` (c = ``log_offset``, 0 unless the
series holds zeros), optionally differenced at lag d
(``z_t = y_t - y_{t-d}``), then standardised per series with the mean and standard deviation of the
training part only.

With a window level (``[data] level = m``, ``SeriesScaler.level``) each sample is also made level-free, the
way ES-RNN, N-BEATS and DeepAR take out a series' level before the network sees it::

    l_n = mean(z[o_n - m : o_n])     (S,)      the mean of the window's last m scaled points
    x_n = z[o_n - W : o_n] - l_n,    y_n = z[o_n : o_n + H] - l_n

and the network's outputs get ``l_n`` added back before ``SeriesScaler.inverse``. With ``log`` and no
differencing the targets are then log levels relative to the last season's mean, so a 36-step forecast is
not the running sum of 36 predicted changes.

The split is by time, never shuffled across its boundaries::

    | training windows ...... | validation windows | test: the last k * H points |
    0                      val_start            test_start                      T

* test: k = ``test_windows`` non-overlapping windows whose targets are exactly the last k * H points
  (origins ``test_start + j * H``); their inputs may reach back into earlier data, as a forecast would.
* validation: the latest ``ceil(val_fraction * n)`` of the n windows whose targets end before
  ``test_start``.
* training: the windows whose targets end before the first validation target, so no training target is
  a validation target.
* the scaling statistics come from the points before the first validation target (before the test when
  there is no validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmkit.data.base import ArrayDataset, SourceData
from lstmkit.data.timeseries import Series
from lstmkit.errors import DataError

__all__ = ["SeriesScaler", "ForecastSpec", "WindowSplit", "split_windows", "make_windows", "forecast_source",
           "scaler_for"]


@dataclass
class SeriesScaler:
    """``y -> z``: optional log (of ``y + log_offset``), optional lag-``difference`` differencing, per-series
    standardisation.

    ``transform`` maps T points (T, S) to T - d scaled points, ``z[i]`` belonging to time ``i + d``.
    ``inverse`` maps scaled future points back to values, integrating the differences from the history.

    Example::

        scaler = SeriesScaler(log=True, difference=12).fit(y[:100])     # statistics of the first 100 points
        z = scaler.transform(y)                                         # (T - 12, S)
        scaler.inverse(z[100 - 12:], history=y[:100])                   # == y[100:] (up to rounding)
    """

    log: bool = False
    difference: int = 0
    normalize: bool = True
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    level: int = 0
    """m > 0: each window's level, the mean of its last m scaled points, is taken out of its inputs and
    targets (``window_level``) and added back to its forecasts; 0: none."""
    log_offset: float = 0.0
    """c >= 0 added before the log, ``log(y + c)``, and taken off after ``exp``: 1 takes counts and sales that
    hold zeros (``log1p``); 0 (the default) is the plain log of a positive series."""

    MIN_STD = 1e-8

    def _pre(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.log:
            c = self.log_offset
            if (y + c <= 0).any():
                if c:
                    raise DataError(f"[data] log = true, log_offset = {c:g}: expected values above {-c:g}, "
                                    f"got {float(y.min()):g}")
                raise DataError(f"[data] log = true: expected positive values, got {float(y.min()):g}; "
                                "set log_offset = 1 for counts with zeros, or log = false for negative values")
            return np.log(y + c)
        return y

    def _difference(self, u: np.ndarray) -> np.ndarray:
        d = self.difference
        return u[d:] - u[:-d] if d else u

    def fit(self, y: np.ndarray) -> SeriesScaler:
        """Fit the standardisation on the training points ``y`` (T_train, S); returns ``self``."""
        return self.fit_many([y])

    def fit_many(self, histories: list[np.ndarray], within: bool = False) -> SeriesScaler:
        """Fit one standardisation on the training points of several series (each (T_i, S)), each logged and
        differenced on its own, so that no difference spans two series (a pooled model's scaling).

        ``within``: the std is that of the points less their own series' mean, the spread a level-free
        window sees, not the spread between the series' levels."""
        parts = [self._difference(self._pre(y)) for y in histories]
        u = np.concatenate(parts)
        if len(u) == 0:
            raise DataError(f"SeriesScaler.fit: expected more than {self.difference} training points, "
                            f"got {max(len(y) for y in histories)}")
        if self.normalize:
            self.mean = u.mean(axis=0)
            std = np.concatenate([p - p.mean(axis=0) for p in parts if len(p)]).std(axis=0) if within else u.std(axis=0)
            self.std = np.where(std < self.MIN_STD, 1.0, std)
        else:
            self.mean, self.std = np.zeros(u.shape[1]), np.ones(u.shape[1])
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        """Scaled points ``(T - d, S)``, float64, for values ``y`` (T, S)."""
        self._require_fitted()
        return (self._difference(self._pre(y)) - self.mean) / self.std

    def inverse(self, z: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Values ``(H, S)`` for the scaled points ``z`` (H, S) that follow the raw ``history`` (n >= d, S)."""
        self._require_fitted()
        u = np.asarray(z, dtype=np.float64) * self.std + self.mean  # (H, S)
        d = self.difference
        if d:
            if len(history) < d:
                raise DataError(f"SeriesScaler.inverse: expected at least {d} points of history, got {len(history)}")
            levels = list(self._pre(history[-d:]))
            for step in range(len(u)):
                levels.append(levels[-d] + u[step])
            u = np.asarray(levels[d:]).reshape(u.shape)
        return np.exp(u) - self.log_offset if self.log else u

    def window_level(self, z: np.ndarray) -> np.ndarray:
        """The level ``(S,)`` of a window of scaled points ``z`` (W, S): ``mean(z[-m:])`` with m = ``level``,
        zeros without a level."""
        z = np.asarray(z, dtype=np.float64)
        if not self.level:
            return np.zeros(z.shape[1])
        if len(z) < self.level:
            raise DataError(f"window level: expected a window of at least {self.level} points, got {len(z)}")
        return z[-self.level:].mean(axis=0)

    def to_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {"log": self.log, "difference": self.difference, "normalize": self.normalize,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], "level": self.level,
                "log_offset": self.log_offset}

    @classmethod
    def from_dict(cls, d: Any) -> SeriesScaler:
        keys = {"log", "difference", "normalize", "mean", "std"}  # "level", "log_offset": absent from older folders
        if not isinstance(d, dict) or not keys <= set(d) <= keys | {"level", "log_offset"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise DataError(f"series scaling: expected a table with keys {sorted(keys)} (and 'level', "
                            f"'log_offset'), got {got}")
        mean, std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape or not np.all(np.isfinite(mean)) or not np.all(std > 0):
            raise DataError(f"series scaling: expected equal-length lists of finite means and positive stds, "
                            f"got {d['mean']} and {d['std']}")
        level = d.get("level", 0)
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise DataError(f"series scaling: expected 'level' to be a whole number >= 0, got {level!r}")
        offset = d.get("log_offset", 0.0)
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not 0 <= offset < math.inf:
            raise DataError(f"series scaling: expected 'log_offset' to be a finite number >= 0, got {offset!r}")
        return cls(log=bool(d["log"]), difference=int(d["difference"]), normalize=bool(d["normalize"]), mean=mean,
                   std=std, level=level, log_offset=float(offset))

    def _require_fitted(self) -> None:
        if self.mean is None or self.std is None:
            raise RuntimeError("SeriesScaler: call fit() or from_dict() before using it")


@dataclass
class WindowSplit:
    """Window origins (the index of each window's first target) of each split, and the scaling's end."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    fit_end: int
    """The scaling is fitted on points ``[0, fit_end)``."""
    test_start: int


def split_windows(length: int, window: int, horizon: int, test_windows: int, val_fraction: float,
                  difference: int = 0, name: str = "series") -> WindowSplit:
    """Window origins by time for a series of ``length`` points (see the module docstring).

    Raises:
        DataError: if the series is too short for one training window plus the test windows.
    """
    first = difference + window  # the earliest origin with a full input window of scaled points
    test_start = length - test_windows * horizon
    needed = difference + window + horizon + test_windows * horizon
    if test_start - horizon < first:
        raise DataError(f"{name}: expected at least {needed} points for window {window} + horizon {horizon} "
                        f"+ {test_windows} test window(s) of {horizon}"
                        + (f" + difference {difference}" if difference else "") + f", got {length}")
    candidates = np.arange(first, test_start - horizon + 1)  # targets end before the test part
    n_val = math.ceil(val_fraction * len(candidates)) if val_fraction > 0 else 0
    val = candidates[len(candidates) - n_val:] if n_val else candidates[:0]
    if n_val:
        train = candidates[candidates + horizon <= val[0]]
        if len(train) == 0:
            raise DataError(f"{name}: val_fraction {val_fraction} leaves no training window ({len(candidates)} "
                            f"windows before the test part, {n_val} for validation, each {horizon} ahead); "
                            "lower val_fraction, window or horizon")
    else:
        train = candidates
    fit_end = int(val[0]) if n_val else test_start
    test = test_start + horizon * np.arange(test_windows)
    return WindowSplit(train=train, val=val, test=test, fit_end=fit_end, test_start=test_start)


def make_windows(z: np.ndarray, origins: np.ndarray, window: int, horizon: int, offset: int,
                 scaler: SeriesScaler | None = None) -> ArrayDataset:
    """Samples ``x (N, W, S)`` and targets ``y (N, H * S)`` from scaled points ``z`` whose first is time ``offset``;
    with a ``scaler`` that has a ``level``, each window's level is taken out of both (see the module docstring)."""
    s = z.shape[1]
    assert len(origins) == 0 or (origins.min() - offset - window >= 0 and origins.max() - offset + horizon <= len(z))
    if len(origins):
        x = np.stack([z[o - offset - window:o - offset] for o in origins])  # (N, W, S)
        y = np.stack([z[o - offset:o - offset + horizon] for o in origins])  # (N, H, S)
        if scaler is not None and scaler.level:
            levels = np.stack([scaler.window_level(w) for w in x])[:, None, :]  # (N, 1, S)
            x, y = x - levels, y - levels
        y = y.reshape(len(origins), horizon * s)  # (N, H * S), step-major
    else:
        x, y = np.zeros((0, window, s)), np.zeros((0, horizon * s))
    return ArrayDataset(x.astype(np.float32), y.astype(np.float32), targets="values")


@dataclass
class ForecastSpec:
    """Everything that turns a forecaster's outputs back into values and scores them.

    Attributes:
        name: the source name.
        series: the raw series (values (T, S), times, names).
        window, horizon, season: W, H and the season m of the seasonal-naive baseline and MASE.
        scaler: the fitted ``SeriesScaler``.
        split: the window origins of each split.
    """

    name: str
    series: Series
    window: int
    horizon: int
    season: int
    scaler: SeriesScaler
    split: WindowSplit
    extra: dict[str, Any] = field(default_factory=dict)

    def to_values(self, outputs: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Forecast values ``(N, H, S)`` from scaled outputs ``(N, H * S)`` of the windows at ``origins``."""
        s = self.series.values.shape[1]
        z = np.asarray(outputs, dtype=np.float64).reshape(len(origins), self.horizon, s)
        values = self.series.values
        if self.scaler.level:
            scaled, d = self.scaler.transform(values), self.scaler.difference  # once: scaled[i] is time i + d
            z = z + np.stack([self.scaler.window_level(scaled[o - d - self.window:o - d])
                              for o in origins])[:, None, :]
        return np.stack([self.scaler.inverse(z[i], values[:o]) for i, o in enumerate(origins)])

    def to_meta(self) -> dict[str, Any]:
        """What a saved model needs to forecast new data: geometry, season, names and the scaling."""
        return {"window": self.window, "horizon": self.horizon, "season": self.season,
                "series": list(self.series.names), "scaler": self.scaler.to_dict(), **self.extra}


def scaler_for(config: Any, name: str) -> SeriesScaler:
    """An unfitted ``SeriesScaler`` as the ``[data]`` table ``config`` asks.

    Raises:
        DataError: for a ``log_offset`` without ``log``.
    """
    if config.log_offset and not config.log:
        raise DataError(f"{name}: [data] log_offset = {config.log_offset:g} is added before the log; expected "
                        "log = true with it (or log_offset = 0)")
    return SeriesScaler(log=config.log, difference=config.difference, normalize=config.normalize,
                        level=config.level, log_offset=config.log_offset)


def forecast_source(series: Series, config: Any, name: str, window: int, horizon: int, season: int) -> SourceData:
    """A ``SourceData`` of windows cut from ``series`` as ``config`` (the ``[data]`` table) asks.

    ``window``, ``horizon`` and ``season`` are the source's defaults, used where the config says 0.
    """
    window = config.window or window
    horizon = config.horizon or horizon
    season = config.season or season
    if config.level > window:
        raise DataError(f"{name}: [data] level = {config.level} averages more points than the window of {window}; "
                        "expected level <= window")
    values = series.values
    split = split_windows(len(values), window, horizon, config.test_windows, config.val_fraction,
                          config.difference, name)
    scaler = scaler_for(config, name)
    scaler.fit(values[:split.fit_end])
    z = scaler.transform(values)  # (T - d, S), z[i] is time i + d
    d = config.difference

    def windows(origins: np.ndarray) -> ArrayDataset:
        return make_windows(z, origins, window, horizon, offset=d, scaler=scaler)

    spec = ForecastSpec(name=name, series=series, window=window, horizon=horizon, season=season, scaler=scaler,
                        split=split)
    return SourceData(train=windows(split.train), test=windows(split.test), label_names=[], image_shape=None,
                      pixel_max=None, name=name, val=windows(split.val) if len(split.val) else None,
                      forecast=spec)
