"""The statistical forecasters every forecasting run is compared with: AutoETS and AutoARIMA.

Both come from well-kept libraries, chosen the way sktime's ``AutoETS(auto=True)`` and ``AutoARIMA`` choose,
so that sktime's documented numbers can be reproduced (Airline, the last 36 months held out: MAPE 0.0619
and 0.0415):

* **AutoETS**: statsmodels' ``ETSModel`` (Hyndman et al. 2008's state-space exponential smoothing) fitted
  by maximum likelihood for every error (A, M) x trend (N, A, Ad) x season (N, A, M) combination, keeping
  the one of lowest AIC. As R's ``ets(restrict = TRUE)`` and sktime do, multiplicative components are tried
  only on a strictly positive series, and additive errors never with a multiplicative season (those models
  are numerically unstable); seasons need ``m > 1`` and at least two full seasons of history.
* **AutoARIMA**: pmdarima's ``auto_arima`` (Hyndman & Khandakar 2008's stepwise search over seasonal
  ARIMA(p, d, q)(P, D, Q)_m, d and D from KPSS and OCSB tests, AIC), with its defaults, for seasons up to
  ``LONG_SEASON`` = 12. A longer season (weekly data with m = 52, hourly with m = 24) is modelled the way
  Hyndman & Athanasopoulos (*Forecasting: Principles and Practice*, dynamic harmonic regression) and
  pmdarima's own docs advise, since the seasonal search takes minutes there (299 s for m = 52 on 208
  points, against 9.5 s; RESULTS.md): a non-seasonal ``auto_arima`` with K pairs of Fourier terms of
  period m as regressors (pmdarima's ``FourierFeaturizer``), K = 1..min(5, m // 2) chosen by AIC.
  statsforecast's compiled AutoARIMA was about 7 times faster and slightly more accurate on Tourism's 305
  positive monthly series (BENCHMARKS.md), but it requires pandas < 3 and lstmkit runs on pandas 3.

Each series is fitted on its own history (the original scale, not the LSTM's log or differences) and
forecast ``horizon`` steps from the end of it, with two guards around the libraries (``_fit_guarded``):

* a constant history forecasts its constant, as R's ``auto.arima`` does (pmdarima chooses ARIMA(0, 0, 0)
  without a mean for it and forecasts 0: pmdarima issue #572);
* a history of tiny magnitude, ``mean |y| < 1e-3``, is fitted in units of ``10^k`` that bring ``mean |y|``
  into [1, 10), and the forecasts are scaled back (pmdarima's search is not scale-invariant: a trend at
  1e-6 is forecast flat, pmdarima issue #480). Larger series are fitted as they are, so the published
  numbers above are reproduced exactly.

and a third inside ``auto_arima_forecast``: the search's fits are taken lowest AIC first, passing over any
that cannot forecast finite values (``_first_finite_forecast``; an unconverged fit at a log-likelihood of 0
has AIC = 2k and would otherwise win).

The fits of several series, or of several test windows (``statistical_forecasts_many``), are independent
and take seconds each, so many of them run side by side in joblib's process pool, one process per CPU core
once each has a few fits to make (``fit_jobs``); the forecasts are the same as one fit after another.

Both libraries are the optional extra ``lstmkit[stats]``; without them ``statistical_forecasts`` returns
nothing and ``missing_note`` says why.

Example::

    forecasts, notes = statistical_forecasts(history, horizon=36, season=12)   # history (T, S)
    forecasts["auto_arima"].shape                                             # (36, S)
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "STATISTICAL",
    "auto_arima_forecast",
    "auto_ets_forecast",
    "fit_jobs",
    "missing_note",
    "statistical_available",
    "statistical_forecasts",
    "statistical_forecasts_many",
]

log = logging.getLogger(__name__)

STATISTICAL = ("auto_ets", "auto_arima")
"""The statistical forecasters, by the names their metrics carry (``test_auto_ets_mase``, ...)."""

INSTALL_HINT = "pip install 'lstmkit[stats]'"


def statistical_available() -> bool:
    """Whether statsmodels and pmdarima can be imported."""
    try:
        import pmdarima  # noqa: F401
        import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401
    except ImportError:
        return False
    return True


def missing_note() -> str:
    """The line a report prints when the statistical forecasters cannot run."""
    return (f"AutoETS and AutoARIMA were not run: they need statsmodels and pmdarima ({INSTALL_HINT})")


def _ets_candidates(y: np.ndarray, season: int) -> list[tuple[str, str | None, bool, str | None]]:
    """(error, trend, damped, seasonal) of every ETS model worth trying on ``y`` (see the module docstring)."""
    positive = bool(np.all(y > 0))
    seasonal_kinds: list[str | None] = [None]
    if season > 1 and len(y) >= 2 * season:
        seasonal_kinds += ["add", "mul"] if positive else ["add"]
    candidates = []
    for error, (trend, damped), seasonal in itertools.product(
            ["add", "mul"] if positive else ["add"], [(None, False), ("add", False), ("add", True)], seasonal_kinds):
        if error == "add" and seasonal == "mul":
            continue
        candidates.append((error, trend, damped, seasonal))
    return candidates


def auto_ets_forecast(y: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """AutoETS's ``horizon`` forecasts ``(H,)`` after the one series ``y`` (T,): the lowest-AIC ETS model.

    Raises:
        ValueError: no candidate model could be fitted.
    """
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = np.asarray(y, dtype=np.float64)
    best = None
    for error, trend, damped, seasonal in _ets_candidates(y, season):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter of the likelihood optimiser
                fit = ETSModel(y, error=error, trend=trend, damped_trend=damped, seasonal=seasonal,
                               seasonal_periods=season if seasonal else None).fit(disp=False)
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("ETS(%s, %s%s, %s) did not fit: %s", error, trend, "d" if damped else "", seasonal, exc)
            continue
        if np.isfinite(fit.aic) and (best is None or fit.aic < best[0]):
            best = (fit.aic, fit)
    if best is None:
        raise ValueError(f"no ETS model could be fitted to {len(y)} points")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(best[1].forecast(horizon), dtype=np.float64)


LONG_SEASON = 12
"""The longest season AutoARIMA searches seasonal orders for; longer ones get Fourier terms instead."""
MAX_FOURIER_PAIRS = 5


def auto_arima_forecast(y: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """AutoARIMA's ``horizon`` forecasts ``(H,)`` after the one series ``y`` (T,): seasonal ARIMA when
    ``1 < season <= LONG_SEASON``, ARIMA with Fourier terms for longer seasons (see the module docstring)."""
    import pmdarima

    y = np.asarray(y, dtype=np.float64)
    if season > LONG_SEASON:
        return _harmonic_arima_forecast(y, horizon, season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = pmdarima.auto_arima(y, m=max(1, season), seasonal=season > 1, suppress_warnings=True,
                                   error_action="ignore", return_valid_fits=True)
        return _first_finite_forecast(fits if isinstance(fits, (list, tuple)) else [fits], horizon)


def _first_finite_forecast(fits: Sequence[Any], horizon: int) -> np.ndarray:
    """The ``horizon`` forecasts of the first of ``fits`` (pmdarima's search, lowest AIC first) that forecasts
    finite values. pmdarima can rank first a fit whose optimiser stopped unconverged at a log-likelihood of
    exactly 0 (AIC = 2k), whose forecasts are NaN: Tourism's M276 got ARIMA(1,1,1)(1,0,2)[12] at AIC 12
    against 4,673 for the next; that fit is passed over for the next by AIC.

    Raises:
        ValueError: no fit forecasts finite values.
    """
    for rank, fit in enumerate(fits):
        try:
            forecast = np.asarray(fit.predict(horizon), dtype=np.float64)
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("ARIMA%s%s could not forecast: %s", fit.order, fit.seasonal_order, exc)
            continue
        if np.isfinite(forecast).all():
            if rank:
                log.info("AutoARIMA: the %d fit(s) of lowest AIC could not forecast finite values; ARIMA%s%s, "
                         "next by AIC, forecasts",
                         rank, fit.order, fit.seasonal_order)
            return forecast
    raise ValueError(f"none of the {len(fits)} ARIMA models fitted forecasts finite values")


def _harmonic_arima_forecast(y: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Dynamic harmonic regression: ``y_t = sum_k a_k sin(2 pi k t / m) + b_k cos(2 pi k t / m) + ARIMA
    errors`` for k = 1..K, the non-seasonal ARIMA searched by ``auto_arima``, K of lowest AIC."""
    from pmdarima import AutoARIMA
    from pmdarima.pipeline import Pipeline
    from pmdarima.preprocessing import FourierFeaturizer

    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(1, min(MAX_FOURIER_PAIRS, season // 2) + 1):
            pipe = Pipeline([("fourier", FourierFeaturizer(season, k)),
                             ("arima", AutoARIMA(seasonal=False, suppress_warnings=True, error_action="ignore"))])
            pipe.fit(y)
            aic = pipe.steps[-1][1].model_.aic()
            if best is None or aic < best[0]:
                best = (aic, pipe)
        return np.asarray(best[1].predict(n_periods=horizon), dtype=np.float64)


FORECASTERS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "auto_ets": auto_ets_forecast,
    "auto_arima": auto_arima_forecast,
}


TINY = 1e-3
"""Histories with ``mean |y|`` below this are fitted in rescaled units (see the module docstring)."""


def _fit_guarded(forecaster: Callable[[np.ndarray, int, int], np.ndarray], y: np.ndarray, horizon: int,
                 season: int) -> np.ndarray:
    """``forecaster``'s ``horizon`` forecasts of the series ``y`` (T,), with the module docstring's guards:
    a constant ``y`` forecasts its constant, a tiny one is fitted in units of ``10^k``."""
    if len(y) and np.all(y == y[0]):
        return np.full(horizon, y[0], dtype=np.float64)
    magnitude = float(np.mean(np.abs(y)))
    if 0 < magnitude < TINY:
        unit = 10.0 ** np.floor(np.log10(magnitude))  # mean |y / unit| in [1, 10)
        return np.asarray(forecaster(y / unit, horizon, season), dtype=np.float64) * unit
    return forecaster(y, horizon, season)


FITS_PER_PROCESS = 3
"""A worker process spends about 3 s importing statsmodels and pmdarima, and one series' two fits take about
2-4 s (Airline, horizon 36), so a process pays for itself from about three series' fits on
(``bench/statistical_jobs.py`` on 2 cores, BENCHMARKS.md: 4 fits took 8.5 s pooled from cold and 8.3 s one
after another; 8 fits 11.6 s pooled from cold, 8.9 s warm and 16.6 s one after another)."""


def _fit_series(forecasters: dict[str, Callable[[np.ndarray, int, int], np.ndarray]], y: np.ndarray, horizon: int,
                season: int, label: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every forecaster's ``horizon`` forecasts of the one series ``y`` (T,), NaN where a fit failed, and the
    notes that say why (``label`` names the series in them)."""
    forecasts: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for name, forecaster in forecasters.items():
        try:
            forecasts[name] = _fit_guarded(forecaster, y, horizon, season)
        except Exception as exc:  # noqa: BLE001 - a library's failure on one series must not end the run
            notes.append(f"{name} could not be fitted to series {label} ({len(y)} points): {exc}")
            forecasts[name] = np.full(horizon, np.nan)
    return forecasts, notes


def fit_jobs(fits: int) -> int:
    """How many processes fit ``fits`` independent series: one per CPU core this process may use, but at
    least ``FITS_PER_PROCESS`` fits each, so 1 (no pool) for a few fits or a single core.

    The cores are joblib's count: the CPU affinity, a container's CPU quota (cgroups) and the environment
    variable ``LOKY_MAX_CPU_COUNT`` each lower it, so ``LOKY_MAX_CPU_COUNT=1`` keeps every fit in this process.
    """
    try:
        from joblib import cpu_count
    except ImportError:
        return 1
    return max(1, min(fits // FITS_PER_PROCESS, cpu_count()))


def _fit_in_processes(forecasters: dict[str, Callable[[np.ndarray, int, int], np.ndarray]], ys: list[np.ndarray],
                      tasks: list[tuple[int, int]], labels: list[list[str]], horizon: int, season: int,
                      jobs: int) -> list[tuple[dict[str, np.ndarray], list[str]]] | None:
    """The fits of ``tasks`` ((window, series) pairs) in ``jobs`` processes, or ``None`` when the pool itself
    failed (no joblib, processes not allowed, a worker killed), so that the caller fits them here instead: a
    run never ends for want of a pool. A forecaster's own failure is a note, inside ``_fit_series``."""
    try:
        from joblib import Parallel, delayed

        log.info("fitting %d series in %d processes", len(tasks), jobs)
        return Parallel(n_jobs=jobs, backend="loky")(
            delayed(_fit_series)(forecasters, ys[w][:, s], horizon, season, labels[w][s]) for w, s in tasks)
    except Exception as exc:  # noqa: BLE001 - the pool's failures are many (ImportError, OSError, loky's own)
        log.warning("could not fit the statistical forecasters in %d processes (%s: %s); fitting them one after "
                    "another", jobs, type(exc).__name__, exc)
        return None


def statistical_forecasts_many(histories: Sequence[np.ndarray], horizon: int, season: int,
                               jobs: int | None = None, names: Sequence[Sequence[str]] | None = None,
                               ) -> list[tuple[dict[str, np.ndarray], list[str]]]:
    """``statistical_forecasts`` for each of several histories (one per test window), the series of all of
    them fitted side by side in ``jobs`` processes (``None``: ``fit_jobs``; 1: in this process).

    ``names`` (one list per history, a name per column) name the series in the notes of failed fits, as
    ``series 'name'``; without them a series is its column number.

    The fits are independent and each takes seconds, so a run over many series or windows spreads them over
    the cores with joblib's process pool (loky: fresh interpreters, safe beside PyTorch's threads). The
    forecasts are the same as one after another: each fit is deterministic and sees only its own series.
    """
    if not statistical_available():
        return [({}, [missing_note()]) for _ in histories]
    ys = [np.asarray(h, dtype=np.float64) for h in histories]
    ys = [y[:, None] if y.ndim == 1 else y for y in ys]
    tasks = [(w, s) for w, y in enumerate(ys) for s in range(y.shape[1])]
    labels = _labels(ys, names)
    jobs = fit_jobs(len(tasks)) if jobs is None else max(1, min(jobs, len(tasks)))
    forecasters = dict(FORECASTERS)
    fits = _fit_in_processes(forecasters, ys, tasks, labels, horizon, season, jobs) if jobs > 1 else None
    if fits is None:
        fits = [_fit_series(forecasters, ys[w][:, s], horizon, season, labels[w][s]) for w, s in tasks]
    results = []
    for w, y in enumerate(ys):
        mine = [fit for (window, _), fit in zip(tasks, fits) if window == w]  # series 0..S-1 of window w
        forecasts = {name: np.stack([found[name] for found, _ in mine], axis=1) for name in forecasters}  # (H, S)
        notes = [note for _, series_notes in mine for note in series_notes]
        results.append((forecasts, notes))
    return results


def _labels(ys: list[np.ndarray], names: Sequence[Sequence[str]] | None) -> list[list[str]]:
    """How the notes name each column of each history: ``'name'`` given ``names``, else the column number."""
    if names is None:
        return [[str(s) for s in range(y.shape[1])] for y in ys]
    if len(names) != len(ys) or any(len(n) != y.shape[1] for n, y in zip(names, ys)):
        raise ValueError(f"statistical forecasts: expected a name for each of the series of {len(ys)} histories, "
                         f"got {[len(n) for n in names]} names for {[y.shape[1] for y in ys]} series")
    return [[repr(str(name)) for name in n] for n in names]


def statistical_forecasts(history: np.ndarray, horizon: int, season: int,
                          jobs: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """AutoETS and AutoARIMA forecasts ``(horizon, S)`` after each series of ``history`` (T, S), and notes.

    Returns ``({}, [missing_note()])`` when the libraries are absent. A series a forecaster cannot fit gets
    NaN forecasts (and so NaN metrics) and a note naming it, so that one bad fit never stops a run. Several
    series are fitted in ``jobs`` processes (see ``statistical_forecasts_many``).
    """
    return statistical_forecasts_many([history], horizon, season, jobs)[0]
