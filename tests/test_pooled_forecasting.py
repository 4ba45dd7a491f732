"""Pooled (global) forecasting, ``[data] pooled = true``: ragged series files, the pooled windows and scaling
against a NumPy reference, every series scored on its own test part, a pooled model forecasting every series
of a file (and one it never saw), its ONNX export, and each refusal with its message."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from task_folders import pooled_forecaster_folder, write_ragged_panel

from lstmkit.cli import main
from lstmkit.config import DataConfig
from lstmkit.data.pooled import pooled_forecast_source
from lstmkit.data.timeseries import Series, read_series_list
from lstmkit.data.windows import SeriesScaler
from lstmkit.errors import DataError
from lstmkit.evaluation.forecasting import forecast_metrics
from lstmkit.tasks.forecast_evaluation import backtest
from lstmkit.tasks.forecasting import forecast_each_from_model, forecast_from_model


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def by_id(panel):
    """The panel file's series by hand: id -> (times, values)."""
    series = {}
    for row in read_rows(panel):
        times, values = series.setdefault(row["id"], ([], []))
        times.append(row["month"])
        values.append(float(row["value"]))
    return series


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    return write_ragged_panel(tmp_path_factory.mktemp("panel") / "panel.csv")


@pytest.fixture(scope="module")
def pooled_run(panel, tmp_path_factory):
    return pooled_forecaster_folder(tmp_path_factory.mktemp("runs") / "pooled", panel)


# ------------------------------------------------------------------------------------------------ reading


def test_a_long_file_reads_as_series_of_their_own_lengths_and_times(panel):
    series = read_series_list(panel)
    expected = by_id(panel)
    assert sorted(s.names[0] for s in series) == sorted(expected)
    for s in series:
        times, values = expected[s.names[0]]
        assert s.times == times and s.values.shape == (len(values), 1)
        np.testing.assert_allclose(s.values[:, 0], values)
    assert len({len(s.values) for s in series}) > 3  # ragged: the lengths differ


def test_a_wide_file_trims_each_column_to_its_values(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("t,a,b\n1,,5\n2,1,6\n3,2,\n4,3,\n")
    a, b = read_series_list(path)
    assert (a.names, a.times, a.values[:, 0].tolist()) == (["a"], ["2", "3", "4"], [1.0, 2.0, 3.0])
    assert (b.names, b.times, b.values[:, 0].tolist()) == (["b"], ["1", "2"], [5.0, 6.0])
    path.write_text("t,a\n1,1\n2,\n3,3\n")
    with pytest.raises(DataError, match=r"column 'a' row 2: expected a number, got a missing value \(NaN\) "
                                        r"\(1 such row\); fill or drop them first \(rows counted from the "
                                        r"column's first value, file row 1\)"):
        read_series_list(path)


def test_times_out_of_order_within_one_id_are_refused(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("month,id,value\n2,a,1\n1,a,2\n1,b,3\n")
    with pytest.raises(DataError, match=r"series .*long.csv id 'a': expected increasing times in column 'month', "
                                        r"got '1' after '2'"):
        read_series_list(path)


# ------------------------------------------------------------------------------------------------ windows


def config(**changes):
    base = {"name": "series", "pooled": True, "log": True, "level": 3, "window": 6, "horizon": 3, "season": 3,
            "val_fraction": 0.0}
    return DataConfig(**{**base, **changes})


def three_series():
    rng = np.random.default_rng(3)
    return [Series(np.exp(rng.normal(np.log(scale), 0.3, size=(n, 1))), [str(t) for t in range(n)], [name])
            for name, scale, n in (("a", 10.0, 15), ("b", 1000.0, 20), ("c", 5.0, 13))]


def test_pooled_windows_and_scaling_match_a_numpy_reference():
    series = three_series()
    source = pooled_forecast_source(series, config(), "series", 6, 3, 3)
    # by hand: log, each series' test part is its last 3 points, one (mu, sigma) over every training point,
    # sigma the spread within each series; each window less the mean of its last 3 scaled points
    logs = [np.log(s.values[:, 0]) for s in series]
    train_points = [v[:-3] for v in logs]
    mu = np.concatenate(train_points).mean()
    sigma = np.concatenate([v - v.mean() for v in train_points]).std()
    xs, ys, test_x, test_y = [], [], [], []
    for v in logs:
        z = (v - mu) / sigma
        origins = range(6, len(v) - 3 - 3 + 1)  # targets end before the test part
        for o in [*origins, len(v) - 3]:
            level = z[o - 3:o].mean()
            (xs if o < len(v) - 3 else test_x).append(z[o - 6:o] - level)
            (ys if o < len(v) - 3 else test_y).append(z[o:o + 3] - level)
    np.testing.assert_allclose(source.train.x[:, :, 0], np.array(xs), atol=1e-6)
    np.testing.assert_allclose(source.train.y, np.array(ys), atol=1e-6)
    np.testing.assert_allclose(source.test.x[:, :, 0], np.array(test_x), atol=1e-6)
    np.testing.assert_allclose(source.test.y, np.array(test_y), atol=1e-6)
    assert source.forecast.scaler.mean == pytest.approx([mu]) and source.forecast.scaler.std == pytest.approx([sigma])


def test_pooled_differences_never_span_two_series():
    series = three_series()
    scaler = SeriesScaler(log=True, difference=1).fit_many([s.values for s in series], within=True)
    diffs = [np.diff(np.log(s.values[:, 0])) for s in series]  # 14 + 19 + 12 differences, none across series
    assert scaler.mean == pytest.approx([np.concatenate(diffs).mean()])
    assert scaler.std == pytest.approx([np.concatenate([d - d.mean() for d in diffs]).std()])


def test_short_series_train_without_validation_are_only_tested_or_are_left_out(caplog):
    short = [Series(np.full((n, 1), 2.0), [str(t) for t in range(n)], [name]) for name, n in (("d", 10), ("e", 8))]
    source = pooled_forecast_source([*three_series(), *short], config(val_fraction=0.5), "series", 6, 3, 3)
    spec = source.forecast
    assert [s.names[0] for s in spec.series] == ["a", "b", "c", "d"]
    assert spec.skipped == ["series 'e': expected at least 9 points for window 6 + 1 test window(s) of 3, got 8"]
    assert ("left out 1 of 5 series (too short for window 6 + 1 test window(s) of 3, or not positive for the log); "
            "the first: series 'e'") in caplog.text
    # d (10 points) has no window before its test part, so it trains on nothing, but the pooled model still
    # forecasts it from its 7 points before the test part (a global model forecasts series it never saw)
    assert len(spec.splits[3].train) == 0 and list(spec.splits[3].test) == [7]
    assert len(source.test) == 4 and len(source.train) == sum(len(split.train) for split in spec.splits)
    # c (13 points) has two windows before its test part, and validating on one would leave no training window
    # whose targets end before it, so it trains on both without validation
    assert len(spec.splits[2].val) == 0 and list(spec.splits[2].train) == [6, 7]
    assert len(spec.splits[1].val) > 0


@pytest.mark.parametrize("changes, message", [
    ({"log": False}, (r"series: \[data\] pooled = true needs log = true, so that series of different scales "
                      r"share one network \(a change of log y is a relative change\); got log = false")),
    ({"level": 0}, (r"series: \[data\] pooled = true needs level > 0 or difference > 0, so that each window is "
                    r"free of its series' level; got level = 0 and difference = 0 \(level = the season is the usual "
                    r"choice\)")),
    ({"window": 40}, (r"series: expected at least one series long enough to train and test on, got none of 3 "
                      r"\(series 'a': expected at least 43 points for window 40 \+ 1 test window\(s\) of 3, got 15; "
                      r"series 'b'.*; series 'c'.*\)$")),
    ({"window": 15}, (r"series: expected a series with a training window \(window 15 \+ horizon 3 before its test "
                      r"part\), got none among the 1 series long enough to forecast")),
])
def test_pooled_settings_that_cannot_work_are_refused(changes, message):
    with pytest.raises(DataError, match=message):
        pooled_forecast_source(three_series(), config(**changes), "series", 6, 3, 3)


def test_a_bundled_series_refuses_pooled(tmp_path, capsys):
    status = main(["train", "configs/airline.toml", "--out", str(tmp_path / "run"), "--set", "data.pooled=true"])
    assert status != 0
    assert ('airline: [data] pooled = true pools the series of a file (name = "series"); the bundled '
            "'airline' is one series") in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ a run


def test_a_pooled_run_learns_every_series_and_scores_each_on_its_own_test_part(pooled_run, panel):
    metrics = json.loads((pooled_run / "metrics.json").read_text())
    # one network for series from 10 to 10^4: it must beat both baselines by a wide margin
    assert metrics["test_mase"] < 0.75 * metrics["test_seasonal_naive_mase"]
    assert metrics["test_mase"] < 0.3 * metrics["test_naive_mase"]
    report = json.loads((pooled_run / "evaluation.json").read_text())
    expected = by_id(panel)
    kept = [name for name in expected if name != "tiny"]
    assert report["pooled"] and sorted(report["series"]) == sorted(kept)
    assert report["notes"][-1] == ("left out: series 'tiny': expected at least 36 points for window 24 + 1 test "
                                   "window(s) of 12, got 20")
    rows = read_rows(pooled_run / "forecast.csv")
    assert len(rows) == 12 * len(kept)
    for name in kept:
        times, values = expected[name]
        mine = [r for r in rows if r["series"] == name]
        assert [r["time"] for r in mine] == times[-12:]  # its own last 12 months
        np.testing.assert_allclose([float(r["actual"]) for r in mine], values[-12:], rtol=1e-5)
        forecast = np.array([float(r["forecast"]) for r in mine])
        own = forecast_metrics(np.array(values[-12:]), forecast, np.array(values[:-12]), 12)
        for key in ("mape", "mase"):
            assert report["per_series"][name]["lstm"][key] == pytest.approx(own[key], rel=1e-4)
    for key in ("mape", "smape", "mase"):  # the run's metric is the mean of the series' own
        assert metrics[f"test_{key}"] == pytest.approx(np.mean([m["lstm"][key] for m in report["per_series"].values()]))
    assert "12-step forecasts of 12 series by one pooled model" in (pooled_run / "evaluation.txt").read_text()
    meta = json.loads((pooled_run / "model" / "meta.json").read_text())["forecast"]
    assert meta["pooled"] and meta["series"] == ["value"] and meta["trained_series"] == 12


def test_pooled_backtest_scores_each_series_as_its_own_run_would():
    series = three_series()
    source = pooled_forecast_source(series, config(), "series", 6, 3, 3)
    outputs = np.random.default_rng(0).normal(size=(3, 3))  # any network outputs: (S * k, H)
    pooled = backtest(source.forecast, outputs, statistical=False)
    for i, part in enumerate(source.forecast.parts()):
        own = backtest(part, outputs[i:i + 1], statistical=False)
        np.testing.assert_allclose(pooled.forecasts["lstm"][..., i], own.forecasts["lstm"][..., 0])
        assert pooled.per_series[part.series.names[0]]["lstm"] == own.metrics["lstm"]
        assert pooled.series_times[i] == part.series.times[-3:]
    assert pooled.metrics["lstm"]["mase"] == pytest.approx(np.mean([m["lstm"]["mase"]
                                                                    for m in pooled.per_series.values()]))


def test_pooled_statistical_forecasts_belong_to_their_own_series():
    pytest.importorskip("statsmodels")
    pytest.importorskip("pmdarima")
    from lstmkit.evaluation.statistical import statistical_forecasts

    series = three_series()[:2]
    source = pooled_forecast_source(series, config(test_windows=2), "series", 6, 3, 3)
    result = backtest(source.forecast, np.zeros((4, 3)), statistical=True)
    for i, s in enumerate(series):
        for window, origin in enumerate(source.forecast.splits[i].test):
            found, _ = statistical_forecasts(s.values[:origin], 3, 3, jobs=1)
            np.testing.assert_allclose(result.forecasts["auto_ets"][window, :, i], found["auto_ets"][:, 0])
            np.testing.assert_allclose(result.forecasts["auto_arima"][window, :, i], found["auto_arima"][:, 0])


def test_a_failed_fit_is_named_and_left_out_of_every_pooled_mean(monkeypatch):
    pytest.importorskip("statsmodels")
    pytest.importorskip("pmdarima")
    from lstmkit.evaluation import statistical

    def fails_on_large_series(y, horizon, season):
        if y.max() > 100:
            raise ValueError("the optimiser gave up")
        return np.full(horizon, y[-1])

    monkeypatch.setitem(statistical.FORECASTERS, "auto_ets", fails_on_large_series)
    monkeypatch.setitem(statistical.FORECASTERS, "auto_arima", lambda y, horizon, season: np.full(horizon, y[-1]))
    source = pooled_forecast_source(three_series(), config(), "series", 6, 3, 3)
    result = backtest(source.forecast, np.zeros((3, 3)), statistical=True)
    assert "auto_ets could not be fitted to series 'b' (17 points): the optimiser gave up" in result.notes
    own = result.per_series
    assert np.isnan(own["b"]["auto_ets"]["mape"]) and np.isnan(own["b"]["auto_ets"]["mase"])
    for name in ("mae", "mape", "smape", "mase"):
        assert result.metrics["auto_ets"][name] == pytest.approx((own["a"]["auto_ets"][name]
                                                                  + own["c"]["auto_ets"][name]) / 2)
    assert result.metrics["auto_ets"]["rmse"] == pytest.approx(np.sqrt((own["a"]["auto_ets"]["rmse"] ** 2
                                                                        + own["c"]["auto_ets"]["rmse"] ** 2) / 2))
    assert ("AutoETS: MAE, RMSE, MAPE, sMAPE and MASE are the mean over 2 of 3 series (the others' are "
            "undefined: a fit that failed, as noted)") in result.notes
    assert not any(note.startswith(("LSTM:", "AutoARIMA:")) for note in result.notes)


def test_an_undefined_mase_or_mape_note_names_the_reason_it_saw_and_no_failed_fit():
    rng = np.random.default_rng(4)
    periodic = np.tile([4.0, 7.0, 5.0], 6)[:, None]  # constant at lag 3: every MASE of 'flat' is undefined
    zero_at_end = np.concatenate([rng.uniform(1, 9, size=(15, 1)), [[3.0], [0.0], [2.0]]])  # an actual 0
    series = [Series(periodic, [str(t) for t in range(18)], ["flat"]),
              Series(zero_at_end, [str(t) for t in range(18)], ["zero"]),
              Series(rng.uniform(1, 9, size=(18, 1)), [str(t) for t in range(18)], ["plain"])]
    source = pooled_forecast_source(series, config(log_offset=1.0), "series", 6, 3, 3)
    result = backtest(source.forecast, np.zeros((3, 3)), statistical=False)
    assert np.isnan(result.per_series["flat"]["naive"]["mase"]) and np.isnan(result.per_series["zero"]["lstm"]["mape"])
    for label in ("LSTM", "naive", "seasonal naive"):
        assert (f"{label}: MAPE and MASE are the mean over 2 of 3 series (the others' are undefined: a history "
                "constant at lag m, whose MASE scale is 0; an actual value of 0, which MAPE divides by)") in result.notes
    assert not any("a fit that failed" in note for note in result.notes)


# ------------------------------------------------------------------------------------------------ forecasting


def test_forecast_command_forecasts_every_series_and_reproduces_the_run(pooled_run, tmp_path, capsys):
    out = tmp_path / "f.csv"
    assert main(["forecast", str(pooled_run / "model"), "--backtest", "--no-statistical", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "12 steps of 12 series" in printed and "metrics: the mean over the 12 series" in printed
    metrics = json.loads((pooled_run / "metrics.json").read_text())
    line = next(line for line in printed.splitlines() if line.startswith("lstm "))
    assert f"mase {metrics['test_mase']:.4f}" in line and f"mape {metrics['test_mape']:.4f}" in line
    assert "note: series 'tiny' left out: forecast: expected at least 24 points of history (window 24), got 8" \
        in printed
    run_rows = {(r["series"], r["time"]): float(r["forecast"]) for r in read_rows(pooled_run / "forecast.csv")}
    rows = {(r["series"], r["time"]): float(r["forecast"]) for r in read_rows(out)}
    assert rows.keys() == run_rows.keys()
    np.testing.assert_allclose([rows[k] for k in run_rows], list(run_rows.values()), rtol=1e-5)
    from PIL import Image

    with Image.open(out.with_suffix(".png")) as image:  # the first 6 of the 12 series, one panel each
        assert image.size == (900, 6 * 320)


def test_a_pooled_model_forecasts_a_series_it_never_saw(pooled_run, tmp_path):
    new = tmp_path / "new.csv"
    t = np.arange(60)
    values = 300 * np.exp(0.01 * t + 0.2 * np.sin(2 * np.pi * t / 12))
    new.write_text("month,value\n" + "".join(f"{m},{v:.6g}\n" for m, v in zip(t, values)))
    result = forecast_from_model(pooled_run / "model", input=new, backtest=True)
    assert result.names == ["value"] and result.forecast.shape == (12, 1)
    assert result.metrics["lstm"]["mase"] < result.metrics["seasonal_naive"]["mase"] * 0.75
    several = forecast_each_from_model(pooled_run / "model")  # the run's own file: 'tiny' is too short
    assert len(several) == 12 and "tiny" not in [r.names[0] for r in several]
    with pytest.raises(DataError, match=r"the pooled model .* forecasts one series at a time and got 12; "
                                        r"forecast_each_from_model \(and lstmkit forecast\) forecasts each of them"):
        forecast_from_model(pooled_run / "model")
    import lstmkit

    loaded = lstmkit.load(pooled_run / "model")  # the same through the loaded model's verb
    each = loaded.forecast_each(input=new, backtest=True)
    assert len(each) == 1 and np.allclose(each[0].forecast, result.forecast)


def test_a_pooled_model_exports_and_onnx_runtime_forecasts_as_lstmkit(pooled_run, panel, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from lstmkit.export import export_onnx

    path = export_onnx(pooled_run / "model", tmp_path / "pooled.onnx").path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for name, (times, values) in list(by_id(panel).items())[:4]:
        if name == "tiny":
            continue
        one = tmp_path / f"{name}.csv"
        one.write_text("month,value\n" + "".join(f"{t},{v}\n" for t, v in zip(times, values)))
        expected = forecast_from_model(pooled_run / "model", input=one).forecast[:, 0]
        history = np.asarray(values, dtype=np.float32)[None, :, None]
        got = session.run(["forecast"], {"history": history})[0][0, :, 0]
        np.testing.assert_allclose(got, expected, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ .tsf, M1 yearly


TSF = """# a comment
@relation demo
@attribute series_name string
@attribute start_timestamp date
@frequency monthly
@horizon 2
@missing false
@equallength false
@data
A:2020-11-01 00-00-00:1,2,3.5
B:2021-01-01 00-00-00:10,20
"""


def test_a_tsf_file_reads_with_its_start_times_and_frequency(tmp_path):
    pytest.importorskip("aeon")
    path = tmp_path / "demo.tsf"
    path.write_text(TSF)
    a, b = read_series_list(path)
    assert (a.names, a.times, a.values[:, 0].tolist()) == (["A"], ["2020-11", "2020-12", "2021-01"], [1.0, 2.0, 3.5])
    assert (b.names, b.times, b.values[:, 0].tolist()) == (["B"], ["2021-01", "2021-02"], [10.0, 20.0])
    undated = tmp_path / "undated.tsf"
    undated.write_text(TSF.replace("@attribute start_timestamp date\n", "").replace("2020-11-01 00-00-00:", "")
                       .replace("2021-01-01 00-00-00:", ""))
    assert [s.times for s in read_series_list(undated)] == [["0", "1", "2"], ["0", "1"]]
    gap = tmp_path / "gap.tsf"
    gap.write_text(TSF.replace("@missing false", "@missing true").replace("1,2,3.5", "1,?,3.5"))
    with pytest.raises(DataError, match=r"series 'A': expected finite values, got 1 NaN/Inf \(first at time '2020-12'\)"):
        read_series_list(gap)
    from lstmkit.data.timeseries import read_series

    with pytest.raises(DataError, match=r"demo.tsf: a .tsf file holds series of their own lengths; read it with "
                                        r"\[data\] pooled = true \(one model for all of them\)"):
        read_series(path)


def test_the_m1_yearly_source_is_the_file_aeon_ships():
    pytest.importorskip("aeon")
    from lstmkit.data.forecast_sources import load_config_series_list
    from lstmkit.data.ucr import aeon_data_dir

    series = load_config_series_list(DataConfig(name="m1-yearly", pooled=True))
    assert len(series) == 181 and min(len(s.values) for s in series) == 15 and max(len(s.values) for s in series) == 58
    # T1 by hand, from the file's own data line
    line = next(row for row in (aeon_data_dir() / "m1_yearly_dataset" / "m1_yearly_dataset.tsf").read_text()
                .splitlines() if row.startswith("T1:"))
    values = [float(v) for v in line.rsplit(":", 1)[1].split(",")]
    assert series[0].names == ["T1"] and series[0].values[:, 0].tolist() == values
    assert series[0].times[:2] == ["1972", "1973"] and len(series[0].times) == len(values)
    with pytest.raises(DataError, match=r"m1-yearly: its series have lengths of their own; train one model on all "
                                        r"of them with \[data\] pooled = true"):
        from lstmkit.data import load_source

        load_source("m1-yearly", config=DataConfig(name="m1-yearly", log=True, level=1))


def test_the_m1_yearly_recipe_learns_from_all_181_series(tmp_path):
    pytest.importorskip("aeon")
    out = tmp_path / "m1"
    recipe = Path(__file__).parent.parent / "configs" / "m1_yearly.toml"
    assert main(["train", str(recipe), "--out", str(out), "--set", "train.statistical=false",
                 "--set", "train.progress=false", "--set", "train.tensorboard=false", "--set", "train.report=false",
                 "--set", "train.num_threads=1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "evaluation.json").read_text())
    assert len(report["series"]) == 181  # every series is scored, the 15-year ones from their window alone
    # RESULTS.md: 3.38 against naive's 4.89 over seeds 0-4
    assert metrics["test_mase"] < 0.8 * metrics["test_naive_mase"]


def test_lstm_forecaster_fits_one_pooled_model_on_a_list_of_series(panel):
    from lstmkit.tasks.forecasting import LSTMForecaster

    series = [np.array(values) for name, (_, values) in by_id(panel).items() if name != "tiny"]
    est = LSTMForecaster(window=24, horizon=12, season=12, log=True, level=12,
                         overrides=["train.epochs=40", "train.lr=0.01", "model.hidden_size=16",
                                    "train.num_threads=1"]).fit([y[:-12] for y in series])
    forecasts, baselines = est.predict(), est.baselines()
    assert len(forecasts) == len(series) and all(f.shape == (12,) for f in forecasts)
    scaled = [np.mean(np.abs(f - y[-12:])) / np.mean(np.abs(y[12:-12] - y[:-24])) for f, y in zip(forecasts, series)]
    naive = [np.mean(np.abs(b - y[-12:])) / np.mean(np.abs(y[12:-12] - y[:-24]))
             for b, y in zip(baselines["seasonal_naive"], series)]
    assert np.mean(scaled) < 0.75 * np.mean(naive)  # MASE against seasonal naive's, as the pooled run
    with pytest.raises(DataError, match=r"LSTMForecaster.fit: expected a list of 1-D series, got shape \(3, 2\) at 1"):
        LSTMForecaster(log=True, level=1).fit([np.ones(20), np.ones((3, 2))])


def test_reading_refusals_name_the_problem(tmp_path, monkeypatch):
    empty = tmp_path / "wide.csv"
    empty.write_text("t,a,b\n1,1,\n2,2,\n")
    with pytest.raises(DataError, match=r"wide.csv column 'b': expected at least one value, got none"):
        read_series_list(empty)
    bad = tmp_path / "bad.tsf"
    bad.write_text("@relation x\n@data\nnot a series line\n")
    pytest.importorskip("aeon")
    with pytest.raises(DataError, match=r"bad.tsf: expected a .tsf file, got "):
        read_series_list(bad)
    import sys

    monkeypatch.setitem(sys.modules, "aeon.datasets", None)  # as if aeon were not installed
    good = tmp_path / "demo.tsf"
    good.write_text(TSF)
    with pytest.raises(DataError, match=r"demo.tsf: reading .tsf files needs aeon \(pip install 'lstmkit\[aeon\]'\), "
                                        r"which is not installed"):
        read_series_list(good)


def test_forecast_refuses_a_file_whose_every_series_is_too_short(pooled_run, tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("month,id,value\n" + "".join(f"{t},x,{10 + t}\n" for t in range(10)))
    with pytest.raises(DataError, match=r"forecast: no series long enough to forecast \(series 'x' left out: forecast: "
                                        r"expected at least 24 points of history \(window 24\), got 10\)"):
        forecast_each_from_model(pooled_run / "model", input=short)


def nine_series():
    rng = np.random.default_rng(5)
    return [Series(np.exp(rng.normal(np.log(10.0 * (i + 1)), 0.1 + 0.1 * i, size=(16, 1))), [str(t) for t in range(16)],
                   [f"s{i}"]) for i in range(9)]


def test_the_plot_of_a_pooled_run_shows_its_best_to_its_worst_series_by_mase(tmp_path):
    from PIL import Image

    from lstmkit.tasks.forecast_evaluation import pooled_panels

    series = nine_series()
    source = pooled_forecast_source(series, config(), "series", 6, 3, 3)
    result = backtest(source.forecast, np.zeros((9, 3)), statistical=False)
    panels = pooled_panels(source.forecast, result)
    mase = {name: result.per_series[name]["lstm"]["mase"] for name in result.names}
    order = sorted(mase, key=mase.get)
    shown = [order[rank] for rank in (0, 2, 3, 5, 6, 8)]  # 6 evenly spaced ranks of 9, best and worst included
    assert [p.title.split("'")[1] for p in panels] == shown
    assert panels[0].title == (f"series: series '{shown[0]}', LSTM MASE {mase[shown[0]]:.3g} (rank 1 of 9, best "
                               f"first; seasonal naive {result.per_series[shown[0]]['seasonal_naive']['mase']:.3g})")
    worst = series[int(shown[-1][1:])]
    np.testing.assert_allclose(panels[-1].history, worst.values[:-3, 0])
    np.testing.assert_allclose(panels[-1].actual, worst.values[-3:, 0])
    np.testing.assert_allclose(panels[-1].forecast, result.forecasts["lstm"][0, :, result.names.index(shown[-1])])
    assert panels[-1].future_times == ["13", "14", "15"] and set(panels[-1].baselines) == {"naive", "seasonal naive"}
    from lstmkit.report.plots import plot_forecast_panels

    with Image.open(plot_forecast_panels(tmp_path / "f.png", panels)) as image:
        assert image.size == (900, 6 * 320)  # one 3.2-inch panel per series at 100 dpi


def test_a_pooled_run_with_fewer_series_than_panels_shows_each_once():
    from lstmkit.tasks.forecast_evaluation import pooled_panels

    source = pooled_forecast_source(three_series(), config(), "series", 6, 3, 3)
    result = backtest(source.forecast, np.zeros((3, 3)), statistical=False)
    assert sorted(p.title.split("'")[1] for p in pooled_panels(source.forecast, result)) == ["a", "b", "c"]


def test_spread_by_rank_leaves_out_undefined_scores_and_keeps_the_best_and_the_worst():
    from lstmkit.tasks.forecast_evaluation import spread_by_rank

    ranked, picks = spread_by_rank([3.0, np.nan, 1.0, 2.0, 5.0, 4.0, 0.5, 6.0, 7.0], 4)
    assert ranked == [6, 2, 3, 0, 5, 4, 7, 8] and picks == [0, 2, 5, 7]  # ranks of 8 defined scores, ends kept
    assert spread_by_rank([np.nan, np.nan, np.nan], 6) == ([0, 1, 2], [0, 1, 2])  # none defined: in order


def test_a_pooled_backtest_plot_shows_the_best_to_the_worst_and_a_forecast_plot_the_first(monkeypatch, tmp_path):
    from lstmkit.report import plots
    from lstmkit.tasks.forecasting import ForecastResult, write_forecast

    drawn = []
    monkeypatch.setattr(plots, "plot_forecast_panels", lambda path, panels, last: drawn.append(panels))

    def result(name, mase):
        return ForecastResult([name], ["0", "1"], np.ones((2, 1)), ["2"], np.ones((1, 1)), {}, actual=np.ones((1, 1)),
                              metrics={"lstm": {"mase": mase}} if mase is not None else {})

    scores = [4.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 5.0]
    write_forecast([result(f"s{i}", m) for i, m in enumerate(scores)], tmp_path / "f.csv", tmp_path / "f.png", "T")
    assert [p.title for p in drawn[-1]][::5] == ["T: series 's1' (LSTM MASE 1, rank 1 of 8, best first)",
                                                 "T: series 's2' (LSTM MASE 8, rank 8 of 8, best first)"]
    assert [p.title.split("'")[1] for p in drawn[-1]] == ["s1", "s3", "s0", "s7", "s4", "s2"]  # ranks 1, 2, 4, 5, 7, 8
    write_forecast([result(f"s{i}", None) for i in range(8)], tmp_path / "g.csv", tmp_path / "g.png", "T")
    assert [p.title for p in drawn[-1]] == [f"T: series 's{i}' ({i + 1} of 8)" for i in range(6)]
