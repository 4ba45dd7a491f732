"""Forecasting data: series files (wide, long, Parquet), their errors, the bundled series, scaling on the
training part only, windowing and the split by time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmkit.config import DataConfig
from lstmkit.data import load_source, read_series
from lstmkit.data.forecast_sources import load_bundled_series
from lstmkit.data.prepare import load_splits
from lstmkit.data.windows import SeriesScaler, make_windows, split_windows
from lstmkit.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------------
# Reading files


def test_wide_csv_reads_every_value_column(tmp_path):
    path = write(tmp_path / "wide.csv", "# a comment\nmonth,north,south\n2020-01,1,10\n2020-02,2,20\n2020-03,3,30\n")
    series = read_series(path)
    assert series.names == ["north", "south"]
    assert series.times == ["2020-01", "2020-02", "2020-03"]
    np.testing.assert_array_equal(series.values, [[1, 10], [2, 20], [3, 30]])
    assert read_series(path, series=["south"]).values.shape == (3, 1)


def test_long_csv_is_pivoted_in_file_order(tmp_path):
    rows = ["t,id,value"] + [f"{t},{s},{v}" for t in ("1-01", "1-02", "1-10") for s, v in (("b", 1), ("a", 2))]
    series = read_series(write(tmp_path / "long.csv", "\n".join(rows) + "\n"), time_column="t")
    assert series.names == ["b", "a"]
    assert series.times == ["1-01", "1-02", "1-10"]  # not sorted as strings
    np.testing.assert_array_equal(series.values, [[1, 2]] * 3)


def test_long_format_with_other_column_names(tmp_path):
    path = write(tmp_path / "l.csv", "when,store,sales\n1,x,5\n2,x,6\n1,y,7\n2,y,8\n")
    series = read_series(path, format="long", id_column="store", value_column="sales")
    assert series.names == ["x", "y"]
    np.testing.assert_array_equal(series.values, [[5, 7], [6, 8]])


def test_parquet_matches_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"time": ["2020-01", "2020-02", "2020-03"], "a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
    frame.to_parquet(tmp_path / "s.parquet")
    frame.to_csv(tmp_path / "s.csv", index=False)
    from_parquet, from_csv = read_series(tmp_path / "s.parquet"), read_series(tmp_path / "s.csv")
    np.testing.assert_array_equal(from_parquet.values, from_csv.values)
    assert from_parquet.names == from_csv.names == ["a", "b"]


@pytest.mark.parametrize("text, kwargs, match", [
    ("month,a\n1,2\n", {"time_column": "date"}, r"expected a time column 'date', got columns \['month', 'a'\]"),
    ("t,a\n1,2\n2,x\n3,4\n", {}, r"column 'a' row 2: expected a number, got non-numeric value 'x'"),
    ("t,a\n1,2\n2,\n3,4\n", {}, r"column 'a' row 2: expected a number, got a missing value \(NaN\)"),
    ("t,a\n1,2\n2,nan\n", {}, r"column 'a' row 2: expected a number, got a missing value"),
    ("t,a\n1,2\n1,3\n", {}, r"expected each time once in column 't', got '1' again"),
    ("t,a\n2,2\n1,3\n", {}, r"expected increasing times in column 't', got '1' after '2'"),
    ("t\n1\n2\n", {}, r"expected at least one value column besides 't'"),
    ("t,a\n1,2\n", {"series": ["b"]}, r"expected series among \['a'\], got unknown \['b'\]"),
    ("t,id,value\n1,a,1\n2,a,2\n1,b,3\n", {}, r"series 'b' has no value at time '2'"),
    ("t,id,value\n1,a,1\n1,a,2\n", {}, r"expected one value per time and id, got a repeated \('1', 'a'\)"),
    ("", {}, r"expected a header row and data rows, got an empty file"),
    # Issue 17 item 9: trained, then reported test_mae Infinity and test_naive_mase 0.0
    ("t,a\n1,2\n2,1e308\n3,-1e308\n", {}, r"bad.csv column 'a' row 2: expected values within ±1e\+30 \(the network "
                                           r"and its metrics compute in float32\), got 1e\+308 \(2 such rows\)"),
    ("t,a\n1,2\n2," + "9" * 400 + "\n", {}, r"bad.csv column 'a' row 2: expected a number, got '9{20}', beyond float64"),
    # Found by tests/fuzz/test_fuzz_readers.py: a ValueError from pandas' pivot
    ("id,t,value\n1,a,1\n2,a,2\n", {}, r"a long file needs three different columns for time, id and value, got 'id', "
                                       r"'id' and 'value'"),
])
def test_malformed_files_are_rejected_by_name(tmp_path, text, kwargs, match):
    with pytest.raises(DataError, match=match):
        read_series(write(tmp_path / "bad.csv", text), **kwargs)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="expected an existing file, got no such file"):
        read_series(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"expected one of the extensions .csv, .txt, .parquet, .pq \(or .tsf with "
                                        r"\[data\] pooled = true\), got '.xlsx'"):
        read_series(write(tmp_path / "s.xlsx", "x"))


def test_too_short_for_window_and_horizon(tmp_path):
    path = write(tmp_path / "short.csv", "t,y\n" + "".join(f"{i},{i}\n" for i in range(10)))
    config = DataConfig(name="series", path=str(path), window=6, horizon=3, val_fraction=0)
    with pytest.raises(DataError, match=r"series: expected at least 12 points for window 6 \+ horizon 3 \+ "
                                        r"1 test window\(s\) of 3, got 10"):
        load_source("series", config=config)


# --------------------------------------------------------------------------------------------------------
# Bundled series


def test_bundled_series_have_their_published_values():
    airline = load_bundled_series("airline")
    assert airline.values.shape == (144, 1) and airline.values.sum() == 40363
    assert airline.values[0, 0] == 112 and airline.values[-1, 0] == 432
    assert airline.times[0] == "1949-01" and airline.times[-1] == "1960-12"
    lynx = load_bundled_series("lynx")
    assert lynx.values.shape == (114, 1) and lynx.values[0, 0] == 269 and lynx.values[-1, 0] == 3396
    assert lynx.times[0] == "1821" and lynx.times[-1] == "1934" and lynx.values.sum() == 175334
    shampoo = load_bundled_series("shampoo-sales")
    assert shampoo.values.shape == (36, 1) and shampoo.values[0, 0] == pytest.approx(266.0)
    assert shampoo.values.sum() == pytest.approx(11253.6)


@pytest.mark.parametrize("name, window, horizon", [("airline", 24, 12), ("shampoo-sales", 12, 6), ("lynx", 20, 10)])
def test_bundled_sources_window_and_split(name, window, horizon):
    source = load_source(name, config=DataConfig(name=name))
    assert source.train.x.shape[1:] == (window, 1) and source.train.y.shape[1] == horizon
    assert source.test.x.shape == (1, window, 1) and source.val is not None
    assert source.forecast.split.test_start == len(source.forecast.series.values) - horizon


# --------------------------------------------------------------------------------------------------------
# Scaling, windowing and the split by time


def test_windows_have_the_documented_shapes_and_layout():
    z = np.arange(20, dtype=float).reshape(10, 2)  # (T=10, S=2), time t holds [2t, 2t+1]
    ds = make_windows(z, np.array([3, 5]), window=3, horizon=2, offset=0)
    assert ds.x.shape == (2, 3, 2) and ds.y.shape == (2, 4)
    np.testing.assert_array_equal(ds.x[0], z[0:3])
    np.testing.assert_array_equal(ds.y[0], [6, 7, 8, 9])  # step-major: (t=3: s0, s1), (t=4: s0, s1)
    shifted = make_windows(z[1:], np.array([4]), window=3, horizon=2, offset=1)  # z[1:][i] is time i + 1
    np.testing.assert_array_equal(shifted.x[0], z[1:4])
    np.testing.assert_array_equal(shifted.y[0], z[4:6].reshape(-1))


def test_split_by_time_has_no_leakage():
    split = split_windows(100, window=10, horizon=5, test_windows=2, val_fraction=0.2, difference=1)
    assert split.test_start == 90 and list(split.test) == [90, 95]
    assert split.train.min() == 11  # difference + window: the first full window of differenced points
    assert split.train.max() + 5 <= split.val.min()  # no training target is a validation target
    assert split.val.max() + 5 <= split.test_start  # no validation target is a test point
    assert split.fit_end == split.val.min()
    assert np.all(np.diff(split.train) == 1) and np.all(np.diff(split.val) == 1)  # ordered, never shuffled


def test_scaling_is_fitted_on_the_training_part_only(tmp_path):
    values = np.concatenate([np.linspace(1, 2, 40), np.full(20, 1000.0)])  # the last points are far off
    path = tmp_path / "s.csv"
    path.write_text("t,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    config = DataConfig(name="series", path=str(path), window=5, horizon=4, test_windows=5, val_fraction=0.0)
    source = load_source("series", config=config)
    scaler = source.forecast.scaler
    assert source.forecast.split.fit_end == 40
    assert scaler.mean[0] == pytest.approx(values[:40].mean())
    assert scaler.std[0] == pytest.approx(values[:40].std())
    # and a change in the test part changes nothing in the training windows
    path.write_text("t,y\n" + "".join(f"{i},{v if i < 40 else -5.0}\n" for i, v in enumerate(values)))
    other = load_source("series", config=config)
    np.testing.assert_array_equal(other.train.x, source.train.x)
    np.testing.assert_array_equal(other.train.y, source.train.y)


def test_series_source_keeps_its_own_validation_split(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("t,y\n" + "".join(f"{i},{np.sin(i / 3)}\n" for i in range(60)))
    config = DataConfig(name="series", path=str(path), window=6, horizon=2, val_fraction=0.25)
    source, train, val = load_splits(config, seed=0)
    assert val is source.val and train is source.train
    last_train_target = source.forecast.split.train.max() + 2
    assert last_train_target <= source.forecast.split.val.min()


@pytest.mark.parametrize("log, difference", [(False, 0), (True, 0), (False, 1), (True, 12)])
def test_scaler_inverse_undoes_transform(log, difference):
    rng = np.random.default_rng(0)
    y = 100 + np.cumsum(rng.uniform(0, 5, size=(60, 2)), axis=0)
    scaler = SeriesScaler(log=log, difference=difference).fit(y[:40])
    z = scaler.transform(y)
    assert z.shape == (60 - difference, 2)
    np.testing.assert_allclose(scaler.inverse(z[40 - difference:], y[:40]), y[40:], rtol=1e-10)
    again = SeriesScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(again.transform(y), z)


def test_log_rejects_non_positive_values():
    with pytest.raises(DataError, match=r"log = true: expected positive values, got 0; set log_offset = 1 for counts "
                                        r"with zeros, or log = false for negative values"):
        SeriesScaler(log=True).fit(np.array([[1.0], [0.0], [2.0]]))


def test_series_values_beyond_the_bound_are_refused_from_arrays_too():
    from lstmkit.data.timeseries import Series

    with pytest.raises(DataError, match=r"series 'y0': expected values within ±1e\+30 .*got 1e\+308 at time '1'"):
        Series.from_array(np.array([1.0, 1e308]))


# --------------------------------------------------------------------------------------------------------
# The window level ([data] level)


def test_window_level_is_taken_out_of_inputs_and_targets():
    z = np.arange(20, dtype=float).reshape(10, 2)  # (T=10, S=2)
    scaler = SeriesScaler(level=2)
    ds = make_windows(z, np.array([3, 5]), window=3, horizon=2, offset=0, scaler=scaler)
    level = z[1:3].mean(axis=0)  # the mean of the last 2 points of the first window z[0:3]
    np.testing.assert_allclose(ds.x[0], z[0:3] - level)
    np.testing.assert_allclose(ds.y[0], (z[3:5] - level).reshape(-1))
    np.testing.assert_allclose(ds.x[1, -2:].mean(axis=0), 0.0, atol=1e-6)  # every window ends at level 0


def level_source(tmp_path, level=12, **data):
    rng = np.random.default_rng(1)
    t = np.arange(90)
    values = np.exp(0.01 * t[:, None] + 0.1 * np.sin(2 * np.pi * t[:, None] / 12) + 0.02 * rng.normal(size=(90, 2)))
    path = tmp_path / "s.csv"
    path.write_text("t,a,b\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(values)))
    config = DataConfig(name="series", path=str(path), window=24, horizon=12, test_windows=2, val_fraction=0.0,
                        log=True, level=level, **data)
    return load_source("series", config=config), values


@pytest.mark.parametrize("difference", [0, 1])
def test_window_level_round_trips_to_the_values(tmp_path, difference):
    source, values = level_source(tmp_path, difference=difference)
    spec = source.forecast
    assert spec.scaler.level == 12 and spec.to_meta()["scaler"]["level"] == 12
    # the targets themselves, as outputs, give back the observed values of each test window
    forecast = spec.to_values(source.test.y, spec.split.test)  # (2, 12, 2)
    np.testing.assert_allclose(forecast.reshape(-1, 2), values[-24:], rtol=1e-6)
    # and forecast_path feeds the network the same level-free window and adds the same level back
    from lstmkit.tasks.forecasting import forecast_path

    first = int(spec.split.test[0])

    def oracle(x):
        np.testing.assert_allclose(x[0], source.test.x[0], atol=1e-6)
        return source.test.y[:1]

    np.testing.assert_allclose(forecast_path(oracle, spec.scaler, values[:first], 12, 24, 12), values[first:first + 12],
                               rtol=1e-6)


def test_window_level_in_saved_scalings():
    scaler = SeriesScaler(log=True, level=12).fit(np.arange(1.0, 40.0)[:, None])
    assert SeriesScaler.from_dict(scaler.to_dict()).level == 12
    older = {k: v for k, v in scaler.to_dict().items() if k != "level"}  # a model folder from before the level
    assert SeriesScaler.from_dict(older).level == 0
    with pytest.raises(DataError, match=r"expected 'level' to be a whole number >= 0, got -1"):
        SeriesScaler.from_dict({**scaler.to_dict(), "level": -1})


def test_window_level_longer_than_the_window_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"series: \[data\] level = 30 averages more points than the window of 24; "
                                        r"expected level <= window"):
        level_source(tmp_path, level=30)
