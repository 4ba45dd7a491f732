"""``[data] log_offset``: ``log(y + c)`` takes series that hold zeros (counts, sales) into the log scale, so a
pooled model keeps them instead of leaving them out. Checked against NumPy's ``log1p``, through a pooled run
and ONNX Runtime (the server: ``tests/serve/test_serve_pooled.py``)."""

import numpy as np
import pytest
from task_folders import counts, pooled_forecaster_folder, write_count_panel

from lstmkit.config import DataConfig
from lstmkit.data.pooled import pooled_forecast_source
from lstmkit.data.timeseries import Series
from lstmkit.data.windows import SeriesScaler, forecast_source
from lstmkit.errors import DataError
from lstmkit.tasks.forecasting import LSTMForecaster, forecast_each_from_model


def test_log_offset_is_log1p_and_round_trips_series_with_zeros():
    y = np.stack([counts(60, 2.0, 0), counts(60, 40.0, 1)], axis=1)
    assert (y[:, 0] == 0).any()
    scaler = SeriesScaler(log=True, log_offset=1.0, difference=1).fit(y[:40])
    u = np.diff(np.log1p(y[:40]), axis=0)
    np.testing.assert_allclose(scaler.mean, u.mean(axis=0))
    z = scaler.transform(y)
    np.testing.assert_allclose(z, (np.diff(np.log1p(y), axis=0) - u.mean(axis=0)) / u.std(axis=0))
    np.testing.assert_allclose(scaler.inverse(z[39:], y[:40]), y[40:], atol=1e-9)  # zeros come back as 0
    again = SeriesScaler.from_dict(scaler.to_dict())
    assert again.log_offset == 1.0
    np.testing.assert_allclose(again.transform(y), z)
    older = {k: v for k, v in scaler.to_dict().items() if k != "log_offset"}  # a model folder from before
    assert SeriesScaler.from_dict(older).log_offset == 0.0


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SeriesScaler(log=True, log_offset=1.0).fit(np.array([[1.0], [-1.0]])),
     "[data] log = true, log_offset = 1: expected values above -1, got -1"),
    (lambda: SeriesScaler.from_dict({**SeriesScaler(log=True).fit(np.ones((3, 1))).to_dict(), "log_offset": -1}),
     "series scaling: expected 'log_offset' to be a finite number >= 0, got -1"),
    (lambda: forecast_source(Series.from_array(np.ones((40, 1))), DataConfig(name="series", log_offset=1.0),
                             "series", 6, 3, 1),
     "series: [data] log_offset = 1 is added before the log; expected log = true with it (or log_offset = 0)"),
])
def test_log_offset_refusals_say_what_is_wrong(make, message):
    with pytest.raises(DataError) as caught:
        make()
    assert str(caught.value) == message


def test_a_pooled_run_keeps_series_with_zeros_only_with_an_offset():
    series = [Series(counts(48, mean, i)[:, None], [str(t) for t in range(48)], [f"s{i}"])
              for i, mean in enumerate((0.5, 3.0, 50.0, 800.0))]
    base = {"name": "series", "pooled": True, "log": True, "level": 12, "window": 12, "horizon": 6, "season": 12,
            "val_fraction": 0.0}
    plain = pooled_forecast_source(series, DataConfig(**base), "series", 12, 6, 12).forecast
    assert [s.names[0] for s in plain.series] == ["s2", "s3"]  # the two of small means hold zeros
    assert plain.skipped[0] == ("series 's0': expected positive values for log = true (log_offset = 1 takes "
                                "zeros), got 0")
    offset = pooled_forecast_source(series, DataConfig(**base, log_offset=1.0), "series", 12, 6, 12).forecast
    assert [s.names[0] for s in offset.series] == ["s0", "s1", "s2", "s3"] and not offset.skipped
    assert offset.to_meta()["scaler"]["log_offset"] == 1.0


@pytest.fixture(scope="module")
def count_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("counts")
    panel = write_count_panel(root / "counts.csv")
    return pooled_forecaster_folder(root / "run", panel, "data.log_offset=1", "data.window=12", epochs=60)


def test_a_pooled_model_of_counts_learns_the_season_and_exports(count_run, tmp_path):
    import json

    evaluation = json.loads((count_run / "evaluation.json").read_text())
    assert len(evaluation["per_series"]) == 10  # no series left out for its zeros
    metrics = evaluation["metrics"]
    assert metrics["lstm"]["mase"] < 0.8 * metrics["naive"]["mase"]

    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from lstmkit.export import export_onnx

    expected = forecast_each_from_model(count_run / "model")
    session = ort.InferenceSession(str(export_onnx(count_run / "model", tmp_path / "counts.onnx").path),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for one in expected[:3]:  # the series of mostly zeros first
        assert (one.history == 0).any()
        got = session.run(None, {name: one.history[None, -24:].astype(np.float32)})[0][0]
        np.testing.assert_allclose(got, one.forecast, rtol=1e-4, atol=1e-4)


def test_the_estimator_fits_counts_with_zeros_given_an_offset():
    ys = [counts(48, mean, i) for i, mean in enumerate((0.5, 5.0, 50.0))]
    with pytest.raises(DataError) as caught:
        LSTMForecaster(window=12, horizon=6, season=12, log=True, level=12, overrides=["train.epochs=1"]).fit(ys)
    assert str(caught.value) == ("LSTMForecaster.fit: 2 of 3 series cannot be forecast: series '0': expected "
                                 "positive values for log = true (log_offset = 1 takes zeros), got 0; series '1': "
                                 "expected positive values for log = true (log_offset = 1 takes zeros), got 0")
    est = LSTMForecaster(window=12, horizon=6, season=12, log=True, level=12, log_offset=1.0,
                         overrides=["train.epochs=2"]).fit(ys)
    forecasts = est.predict()
    assert len(forecasts) == 3 and all(f.shape == (6,) and np.all(f > -1) for f in forecasts)
