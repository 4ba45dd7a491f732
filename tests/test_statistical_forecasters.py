"""AutoETS and AutoARIMA (the ``lstmkit[stats]`` extra) beside the LSTM: sktime's documented Airline
numbers reproduced, the forecasters in a run's evaluation, and the note when the libraries are absent."""


import numpy as np
import pytest

pytest.importorskip("statsmodels")
pytest.importorskip("pmdarima")

from lstmkit.data.forecast_sources import load_bundled_series
from lstmkit.evaluation import statistical
from lstmkit.evaluation.forecasting import mape, seasonal_naive_forecast
from lstmkit.evaluation.statistical import statistical_forecasts


def test_airline_last_36_months_reproduces_sktimes_documented_mape():
    """sktime's forecasting tutorial: Airline, the last 36 months held out, MAPE of AutoARIMA(sp=12) 0.0415,
    AutoETS(auto=True, sp=12) 0.0619, seasonal naive (sp=12) 0.1319."""
    y = load_bundled_series("airline").values  # (144, 1)
    history, actual = y[:-36], y[-36:]
    forecasts, notes = statistical_forecasts(history, 36, 12)
    assert notes == [] and forecasts["auto_ets"].shape == (36, 1)
    assert mape(actual, forecasts["auto_arima"]) == pytest.approx(0.0415, abs=5e-5)
    assert mape(actual, forecasts["auto_ets"]) == pytest.approx(0.0619, abs=5e-5)
    assert mape(actual, seasonal_naive_forecast(history, 36, 12)) == pytest.approx(0.1319, abs=5e-5)


def test_each_series_is_fitted_on_its_own_and_a_failure_is_a_note(monkeypatch):
    t = np.arange(40, dtype=np.float64)
    history = np.stack([10 + 0.5 * t, 100 - 2.0 * t], axis=1)  # two straight lines
    forecasts, notes = statistical_forecasts(history, 3, 1)
    for name in statistical.STATISTICAL:
        np.testing.assert_allclose(forecasts[name][:, 0], [30.0, 30.5, 31.0], rtol=1e-3)
        np.testing.assert_allclose(forecasts[name][:, 1], [20.0, 18.0, 16.0], rtol=1e-3)

    def broken(y, horizon, season):
        raise ValueError("the optimiser gave up")

    monkeypatch.setitem(statistical.FORECASTERS, "auto_ets", broken)
    forecasts, notes = statistical_forecasts(history, 3, 1)
    assert np.isnan(forecasts["auto_ets"]).all() and np.isfinite(forecasts["auto_arima"]).all()
    assert notes[0] == "auto_ets could not be fitted to series 0 (40 points): the optimiser gave up"


def test_without_the_libraries_the_run_says_why(monkeypatch):
    monkeypatch.setattr(statistical, "statistical_available", lambda: False)
    forecasts, notes = statistical_forecasts(np.ones((30, 1)), 3, 1)
    assert forecasts == {}
    assert notes == [("AutoETS and AutoARIMA were not run: they need statsmodels and pmdarima "
                      "(pip install 'lstmkit[stats]')")]
