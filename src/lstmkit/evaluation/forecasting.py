"""Forecast accuracy (MAE, RMSE, MAPE, sMAPE, MASE) and the naive baselines every forecast is compared with.

For actual values ``y_t`` and forecasts ``ŷ_t`` over the n forecast points, with errors ``e_t = y_t - ŷ_t``:

    MAE   = (1/n) Σ_t |e_t|
    RMSE  = sqrt((1/n) Σ_t e_t²)
    MAPE  = (1/n) Σ_t |e_t| / |y_t|                           (a fraction, as sktime reports it; NaN if a y_t = 0)
    sMAPE = (200/n) Σ_t |e_t| / (|y_t| + |ŷ_t|)             (percent, 0..200; a 0/0 term counts 0)
    MASE  = (1/n) Σ_t |e_t| / q,   q = (1/(T-m)) Σ_{t=m+1}^{T} |y_t - y_{t-m}|

MASE (Hyndman & Koehler 2006, "Another look at measures of forecast accuracy", IJF 22(4)) scales the
errors by ``q``, the in-sample MAE of the one-step seasonal-naive forecast ``y_{t-m}`` over the T points
before the test part, with the series' season m (m = 1: the plain naive forecast). MASE < 1 means smaller
errors than that in-sample benchmark; it is defined whenever the history is not constant, and comparable
across series of different scales. With several series, each is scaled by its own ``q`` and MASE is the
mean over all scaled errors. sMAPE follows the M4 competition's definition.

The baselines forecast H steps after a history ``y_1..y_T``:

    naive:           ŷ_{T+h} = y_T
    seasonal naive:  ŷ_{T+h} = y_{T+h-m(k+1)},   k = floor((h-1)/m)     (the last season, repeated)

Example::

    >>> mase([3.0, 5.0], [2.0, 5.0], insample=[1.0, 2.0, 4.0, 3.0], season=1)   # q = (1+2+1)/3
    0.375
    >>> mape([100.0, 200.0], [110.0, 150.0])                                     # (0.1 + 0.25) / 2
    0.175
"""

from __future__ import annotations

import numpy as np

from lstmkit.errors import DataError

__all__ = [
    "BASELINES",
    "forecast_metrics",
    "mae",
    "mape",
    "mase",
    "naive_forecast",
    "rmse",
    "seasonal_naive_forecast",
    "seasonal_naive_scale",
    "smape",
]

BASELINES = ("naive", "seasonal_naive")


def _pair(actual: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, f = np.asarray(actual, dtype=np.float64), np.asarray(forecast, dtype=np.float64)
    if a.shape != f.shape or a.size == 0:
        raise DataError(f"forecast metrics: expected actual and forecast of the same non-empty shape, "
                        f"got {a.shape} and {f.shape}")
    return a, f


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error."""
    a, f = _pair(actual, forecast)
    return float(np.mean(np.abs(a - f)))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error."""
    a, f = _pair(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error as a fraction, ``1/n Σ |y - ŷ| / |y|``; NaN when an actual value is 0."""
    a, f = _pair(actual, forecast)
    if np.any(a == 0):
        return float("nan")
    return float(np.mean(np.abs(a - f) / np.abs(a)))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200), ``200/n Σ |y - ŷ| / (|y| + |ŷ|)``; a 0/0 term counts 0, and a NaN
    forecast (a failed fit) makes it NaN, as it does every other metric."""
    a, f = _pair(actual, forecast)
    denominator = np.abs(a) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denominator == 0, 0.0, np.abs(a - f) / denominator)
    return float(200.0 * np.mean(terms))


def seasonal_naive_scale(insample: np.ndarray, season: int) -> np.ndarray:
    """MASE's scale ``q`` per series: the mean ``|y_t - y_{t-m}|`` over the in-sample points ``(T,)`` or ``(T, S)``.

    Raises:
        DataError: if the history has no more than ``season`` points.
    """
    y = np.asarray(insample, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if season < 1:
        raise DataError(f"MASE: expected a season m >= 1, got {season}")
    if len(y) <= season:
        raise DataError(f"MASE: expected more than m = {season} in-sample points, got {len(y)}")
    return np.mean(np.abs(y[season:] - y[:-season]), axis=0)  # (S,)


def mase(actual: np.ndarray, forecast: np.ndarray, insample: np.ndarray, season: int) -> float:
    """Mean absolute scaled error; ``actual`` and ``forecast`` are (n,) or (n, S), ``insample`` (T,) or (T, S).

    Returns ``nan`` when a series' history is constant at lag m (the scale is 0).
    """
    a, f = _pair(actual, forecast)
    a, f = (a[:, None], f[:, None]) if a.ndim == 1 else (a, f)
    scale = seasonal_naive_scale(insample, season)
    if scale.shape[0] != a.shape[1]:
        raise DataError(f"MASE: expected in-sample history of {a.shape[1]} series, got {scale.shape[0]}")
    if np.any(scale == 0):
        return float("nan")
    return float(np.mean(np.abs(a - f) / scale))


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """The last value repeated: ``(horizon, S)`` from a history ``(T, S)``."""
    y = np.asarray(history, dtype=np.float64)
    if len(y) == 0:
        raise DataError("naive forecast: expected at least one point of history, got none")
    return np.repeat(y[-1:], horizon, axis=0)


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The last season repeated: ``ŷ_{T+h} = y_{T+h-m(k+1)}``, ``(horizon, S)`` from a history ``(T, S)``."""
    y = np.asarray(history, dtype=np.float64)
    if len(y) < season:
        raise DataError(f"seasonal naive forecast: expected at least m = {season} points of history, got {len(y)}")
    steps = np.arange(horizon)
    return y[len(y) - season + steps % season]


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray, insample: np.ndarray, season: int) -> dict[str, float]:
    """``{"mae", "rmse", "mape", "smape", "mase"}`` of ``forecast`` against ``actual`` (MASE scaled on ``insample``)."""
    return {"mae": mae(actual, forecast), "rmse": rmse(actual, forecast), "mape": mape(actual, forecast),
            "smape": smape(actual, forecast), "mase": mase(actual, forecast, insample, season)}
