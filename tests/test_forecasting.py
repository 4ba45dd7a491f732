"""Forecasting end to end: a short CLI training on a bundled series and on a user's file, the run folder's
forecast outputs beside the baselines, ``lstmkit forecast`` into tmp_path, and ``LSTMForecaster``."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.errors import DataError, ModelFolderError
from lstmkit.tasks.forecast_evaluation import FORECAST_COLUMNS
from lstmkit.tasks.forecasting import LSTMForecaster, forecast_from_model

CONFIGS = Path(__file__).parent.parent / "configs"
QUICK = ["--set", "train.epochs=2", "--set", "train.progress=false", "--set", "model.hidden_size=8",
         "--set", "train.tensorboard=false"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def airline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "airline"
    assert main(["train", str(CONFIGS / "airline.toml"), "--out", str(out), *QUICK]) == 0
    return out


def test_run_folder_reports_the_lstm_beside_both_baselines(airline_run, capsys):
    metrics = json.loads((airline_run / "metrics.json").read_text())
    for prefix in ("test_", "test_naive_", "test_seasonal_naive_"):
        for name in ("mae", "rmse", "mape", "smape", "mase"):
            assert np.isfinite(metrics[prefix + name]), prefix + name
    # 1960 against 1959, by hand: the seasonal-naive MAE on the airline test year is 574 / 12
    assert metrics["test_seasonal_naive_mae"] == pytest.approx(574 / 12)
    assert metrics["test_naive_mae"] == pytest.approx(76.0)  # December 1959 (405) repeated
    text = (airline_run / "evaluation.txt").read_text()
    assert "naive" in text and "seasonal_naive" in text and "MASE: LSTM" in text
    rows = read_csv(airline_run / "forecast.csv")
    assert tuple(rows[0]) == FORECAST_COLUMNS and len(rows) == 12
    assert rows[0]["time"] == "1960-01" and rows[0]["actual"] == "417" and rows[0]["seasonal_naive"] == "360"
    assert (airline_run / "forecast.png").stat().st_size > 1000
    meta = json.loads((airline_run / "model" / "meta.json").read_text())
    assert meta["forecast"]["horizon"] == 12 and meta["forecast"]["series"] == ["passengers"]


def test_run_folder_reports_autoets_and_autoarima_on_the_same_test_year(airline_run):
    pytest.importorskip("statsmodels")
    pytest.importorskip("pmdarima")
    metrics = json.loads((airline_run / "metrics.json").read_text())
    rows = read_csv(airline_run / "forecast.csv")
    actual = np.array([float(r["actual"]) for r in rows])
    for method in ("auto_ets", "auto_arima"):
        forecast = np.array([float(r[method]) for r in rows])
        # metrics.json's MAPE is that of forecast.csv's column: the same 12 test months
        assert metrics[f"test_{method}_mape"] == pytest.approx(np.mean(np.abs(actual - forecast) / actual), rel=1e-4)
        assert metrics[f"test_{method}_mape"] < metrics["test_seasonal_naive_mape"]  # both beat the baseline here
    text = (airline_run / "evaluation.txt").read_text()
    ets = next(line for line in text.splitlines() if line.startswith("auto_ets"))
    assert f"{metrics['test_auto_ets_mape']:.4f}" in ets and f"{metrics['test_auto_ets_mase']:.4f}" in ets
    assert "AutoARIMA" in text.splitlines()[-1] and "MAPE" in text
    report = (airline_run / "report.html").read_text()
    assert "auto_arima" in report and "the LSTM forecast beside the baselines and statistical forecasters" in report


def test_evaluation_without_the_statistical_libraries_says_so(tmp_path, monkeypatch):
    from lstmkit.evaluation import statistical

    monkeypatch.setattr(statistical, "statistical_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "airline.toml"), "--out", str(out), *QUICK, "--set", "train.epochs=1",
                 "--set", "train.report=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test_auto_ets_mase" not in metrics and np.isfinite(metrics["test_seasonal_naive_mape"])
    text = (out / "evaluation.txt").read_text()
    assert "auto_arima" not in text.split("MASE:")[0]
    assert text.splitlines()[-1] == ("note: AutoETS and AutoARIMA were not run: they need statsmodels and "
                                     "pmdarima (pip install 'lstmkit[stats]')")
    assert {r["auto_ets"] for r in read_csv(out / "forecast.csv")} == {""}


def test_forecast_command_writes_csv_and_png(airline_run, tmp_path, capsys):
    out = tmp_path / "future.csv"
    assert main(["forecast", str(airline_run / "model"), "--horizon", "18", "--out", str(out),
                 "--no-statistical"]) == 0
    rows = read_csv(out)
    assert len(rows) == 18 and rows[0]["time"] == "1961-01" and rows[-1]["time"] == "1962-06"
    assert all(r["actual"] == "" for r in rows) and rows[0]["naive"] == "432"
    assert {r["auto_ets"] for r in rows} == {r["auto_arima"] for r in rows} == {""}  # --no-statistical
    assert all(float(r["forecast"]) > 0 for r in rows)
    assert out.with_suffix(".png").stat().st_size > 1000


def test_classifier_commands_point_a_forecaster_to_forecast(airline_run, capsys):
    capsys.readouterr()
    assert main(["predict", str(airline_run / "model"), "x.npy"]) == 2
    assert "got a forecaster's; use lstmkit forecast" in capsys.readouterr().err


def test_evaluate_gives_a_forecaster_its_metrics_beside_the_baselines(airline_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(airline_run), "--json"]) == 0  # the run folder stands for its model/
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads((airline_run / "metrics.json").read_text())
    assert report["metrics"]["lstm"]["mase"] == pytest.approx(metrics["test_mase"], rel=1e-5)
    assert report["metrics"]["seasonal_naive"]["mae"] == pytest.approx(metrics["test_seasonal_naive_mae"])
    assert main(["evaluate", str(airline_run / "model")]) == 0
    assert "MASE: LSTM" in capsys.readouterr().out


def test_backtest_reproduces_the_runs_test_metrics(airline_run, tmp_path, capsys):
    result = forecast_from_model(airline_run / "model", backtest=True)
    metrics = json.loads((airline_run / "metrics.json").read_text())
    assert result.metrics["lstm"]["mase"] == pytest.approx(metrics["test_mase"], rel=1e-5)
    assert result.metrics["seasonal_naive"]["mae"] == pytest.approx(metrics["test_seasonal_naive_mae"])
    capsys.readouterr()
    assert main(["forecast", str(airline_run / "model"), "--backtest", "--out", str(tmp_path / "b.csv"),
                 "--no-statistical"]) == 0
    printed = capsys.readouterr().out
    assert "seasonal_naive" in printed and "auto_ets" not in printed


def printed_metrics(text: str) -> dict[str, dict[str, float]]:
    """``lstmkit forecast --backtest``'s lines ``method  mae 1.2345   rmse ...`` as numbers."""
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 11 and words[1] == "mae":
            rows[words[0]] = {key: float(value) for key, value in zip(words[1::2], words[2::2])}
    return rows


def test_forecast_command_prints_autoets_and_autoarima_as_the_library_fits_them(airline_run, tmp_path, capsys):
    pytest.importorskip("statsmodels")
    pytest.importorskip("pmdarima")
    from lstmkit.data.forecast_sources import load_bundled_series
    from lstmkit.evaluation.forecasting import forecast_metrics
    from lstmkit.evaluation.statistical import auto_arima_forecast, auto_ets_forecast

    values = load_bundled_series("airline").values  # (144, 1); the backtest holds out the last 12
    history, actual = values[:-12], values[-12:]
    capsys.readouterr()
    out = tmp_path / "b.csv"
    assert main(["forecast", str(airline_run / "model"), "--backtest", "--out", str(out)]) == 0
    printed = printed_metrics(capsys.readouterr().out)
    assert list(printed) == ["lstm", "naive", "seasonal_naive", "auto_ets", "auto_arima"]
    rows = read_csv(out)
    for name, fit in (("auto_ets", auto_ets_forecast), ("auto_arima", auto_arima_forecast)):
        direct = fit(history[:, 0], 12, 12)  # (12,), fitted here, straight from lstmkit.evaluation.statistical
        np.testing.assert_allclose([float(r[name]) for r in rows], direct, rtol=1e-5)
        expected = forecast_metrics(actual, direct[:, None], history, 12)
        assert printed[name] == pytest.approx(expected, abs=6e-5), name  # printed to 4 decimals
    assert printed["auto_arima"]["mape"] < printed["seasonal_naive"]["mape"]


def test_forecast_command_without_the_statistical_libraries_says_so(airline_run, tmp_path, capsys, monkeypatch):
    from lstmkit.evaluation import statistical

    monkeypatch.setattr(statistical, "statistical_available", lambda: False)
    capsys.readouterr()
    out = tmp_path / "b.csv"
    assert main(["forecast", str(airline_run / "model"), "--backtest", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert list(printed_metrics("\n".join(lines))) == ["lstm", "naive", "seasonal_naive"]
    assert lines[-1] == ("note: AutoETS and AutoARIMA were not run: they need statsmodels and pmdarima "
                         "(pip install 'lstmkit[stats]')")
    assert {r["auto_ets"] for r in read_csv(out)} == {""}


def test_user_file_training_and_forecast_from_input(tmp_path, capsys):
    t = np.arange(80)
    path = tmp_path / "two.csv"
    with open(path, "w") as fh:
        fh.write("day,a,b\n")
        fh.writelines(f"{i},{10 + np.sin(i / 4):.5f},{5 + np.cos(i / 5):.5f}\n" for i in t)
    out = tmp_path / "run"
    config = tmp_path / "two.toml"
    config.write_text(f'[data]\nname = "series"\npath = {json.dumps(str(path))}\nwindow = 8\nhorizon = 4\n'
                      'test_windows = 2\nseason = 25\n[model]\ntask = "forecaster"\n')
    # the switch that skips AutoETS and AutoARIMA (8 fits here: 2 series x 2 windows x 2 methods)
    assert main(["train", str(config), "--out", str(out), *QUICK, "--set", "train.statistical=false"]) == 0
    assert not any("auto_" in key for key in json.loads((out / "metrics.json").read_text()))
    assert "note: AutoETS and AutoARIMA were not fitted ([train] statistical = false)" in (
        out / "evaluation.txt").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0  # lstmkit evaluate keeps the run's choice
    assert set(json.loads(capsys.readouterr().out)["metrics"]) == {"lstm", "naive", "seasonal_naive"}
    rows = read_csv(out / "forecast.csv")
    assert len(rows) == 2 * 4 * 2 and {r["series"] for r in rows} == {"a", "b"}
    assert [r["window"] for r in rows[::2]] == ["0"] * 4 + ["1"] * 4
    newer = tmp_path / "newer.csv"
    newer.write_text("day,a,b\n" + "".join(f"{i},{10 + np.sin(i / 4):.5f},{5 + np.cos(i / 5):.5f}\n" for i in range(30)))
    assert main(["forecast", str(out / "model"), "--input", str(newer), "--horizon", "6",
                 "--out", str(tmp_path / "f.csv"), "--no-statistical"]) == 0
    rows = read_csv(tmp_path / "f.csv")
    assert len(rows) == 12 and rows[0]["time"] == "30"
    assert (tmp_path / "f.png").is_file()
    short = tmp_path / "short.csv"
    short.write_text("day,a,b\n1,1,1\n2,2,2\n")
    with pytest.raises(DataError, match=r"expected at least 8 points of history \(window 8\), got 2"):
        forecast_from_model(out / "model", input=short)


def test_forecast_refuses_a_classifier_folder(tmp_path):
    fake = tmp_path / "model"
    fake.mkdir()
    with pytest.raises(ModelFolderError):
        forecast_from_model(fake)


def test_lstm_forecaster_fit_predict():
    y = 10 + np.sin(np.arange(60) / 3)
    est = LSTMForecaster(window=8, horizon=3, season=19, overrides=["train.epochs=2"]).fit(y)
    assert est.predict().shape == (3,) and est.predict(7).shape == (7,)
    assert est.baselines(5)["seasonal_naive"].shape == (5,)
    two = LSTMForecaster(window=6, horizon=2, val_fraction=0.2, overrides=["train.epochs=1"]).fit(np.c_[y, -y])
    assert two.predict(3).shape == (3, 2)


def test_lstm_forecaster_takes_a_window_level():
    y = 1000 + np.sin(np.arange(60) / 3)
    est = LSTMForecaster(window=8, horizon=3, level=4, overrides=["train.epochs=2"]).fit(y)
    assert est.scaler_.level == 4 and est.predict(6).shape == (6,)
    assert np.all(np.abs(est.predict(6) - 1000) < 50)  # forecasts around the last level, fed back past H
    with pytest.raises(DataError, match=r"LSTMForecaster: level 9 averages more points than the window of 8; "
                                        r"expected level <= window"):
        LSTMForecaster(window=8, horizon=3, level=9).fit(y)
