"""Forecast metrics and baselines on hand-computed examples."""

import math

import numpy as np
import pytest

from lstmkit.errors import DataError
from lstmkit.evaluation.forecasting import (
    forecast_metrics,
    mae,
    mape,
    mase,
    naive_forecast,
    rmse,
    seasonal_naive_forecast,
    seasonal_naive_scale,
    smape,
)


def test_mae_and_rmse():
    assert mae([1, 2, 3], [2, 2, 1]) == pytest.approx(1.0)  # |−1|, 0, 2
    assert rmse([1, 2, 3], [2, 2, 1]) == pytest.approx(math.sqrt(5 / 3))


def test_smape_by_hand():
    # 200/2 * (10/210 + 20/380)
    assert smape([100, 200], [110, 180]) == pytest.approx(100 * (10 / 210 + 20 / 380))
    assert smape([0, 2], [0, 2]) == 0.0  # a 0/0 term counts 0
    assert smape([1], [-1]) == pytest.approx(200.0)  # the maximum


def test_a_failed_forecast_scores_nan_on_every_metric_never_a_perfect_zero():
    actual, failed = [100.0, 0.0], [float("nan"), float("nan")]  # a statistical fit that failed gives NaN
    metrics = forecast_metrics(actual, failed, [1.0, 2.0, 4.0], 1)
    assert set(metrics) == {"mae", "rmse", "mape", "smape", "mase"}
    assert all(np.isnan(value) for value in metrics.values())


def test_mape_by_hand():
    # |100 - 110| / 100 = 0.1, |200 - 150| / 200 = 0.25, |-50 - -40| / 50 = 0.2: a fraction, not percent
    assert mape([100, 200, -50], [110, 150, -40]) == pytest.approx((0.1 + 0.25 + 0.2) / 3)
    assert mape([[1.0, 4.0]], [[2.0, 3.0]]) == pytest.approx((1.0 + 0.25) / 2)  # every series' points together
    assert np.isnan(mape([0.0, 2.0], [1.0, 2.0]))  # undefined where an actual value is 0
    assert forecast_metrics([100.0, 200.0], [110.0, 150.0], [1.0, 2.0, 4.0], 1)["mape"] == pytest.approx(0.175)


def test_mase_by_hand():
    # q = mean(|2-1|, |4-2|, |3-4|) = 4/3; MAE = 0.5
    assert mase([3.0, 5.0], [2.0, 5.0], insample=[1.0, 2.0, 4.0, 3.0], season=1) == pytest.approx(0.375)
    # m = 2: q = mean(|4-1|, |3-2|, |5-4|, |7-3|) = 9/4; MAE = (1 + 2) / 2
    assert mase([6, 8], [5, 10], insample=[1, 2, 4, 3, 5, 7], season=2) == pytest.approx(1.5 / 2.25)


def test_mase_scales_each_series_by_its_own_history():
    insample = np.array([[0, 0], [1, 10], [2, 20]], dtype=float)  # q = 1 and 10
    actual = np.array([[3, 30]], dtype=float)
    forecast = np.array([[2, 20]], dtype=float)  # errors 1 and 10: both exactly one scale
    assert mase(actual, forecast, insample, season=1) == pytest.approx(1.0)
    np.testing.assert_allclose(seasonal_naive_scale(insample, 1), [1, 10])


def test_mase_of_a_constant_history_is_nan_and_short_histories_are_rejected():
    assert math.isnan(mase([1.0], [2.0], insample=[5.0, 5.0, 5.0], season=1))
    with pytest.raises(DataError, match=r"MASE: expected more than m = 12 in-sample points, got 12"):
        mase([1.0], [1.0], insample=np.ones(12), season=12)


def test_naive_and_seasonal_naive_forecasts():
    history = np.arange(1, 8, dtype=float)[:, None]  # 1..7
    np.testing.assert_array_equal(naive_forecast(history, 3)[:, 0], [7, 7, 7])
    # m = 3: the last season is 5, 6, 7, repeated
    np.testing.assert_array_equal(seasonal_naive_forecast(history, 5, 3)[:, 0], [5, 6, 7, 5, 6])
    with pytest.raises(DataError, match=r"expected at least m = 12 points of history, got 7"):
        seasonal_naive_forecast(history, 1, 12)


def test_seasonal_naive_is_perfect_on_a_periodic_series():
    season = np.array([1.0, 5.0, 3.0, 2.0])
    y = np.tile(season, 6)[:, None]
    history, actual = y[:20], y[20:]
    forecast = seasonal_naive_forecast(history, 4, 4)
    assert forecast_metrics(actual, forecast, history, 1) == {"mae": 0.0, "rmse": 0.0, "mape": 0.0, "smape": 0.0,
                                                                "mase": 0.0}
    assert np.isnan(forecast_metrics(actual, forecast, history, 4)["mase"])  # its in-sample scale is 0 at m = 4


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(DataError, match=r"expected actual and forecast of the same non-empty shape, got \(2,\) and \(3,\)"):
        mae([1, 2], [1, 2, 3])
