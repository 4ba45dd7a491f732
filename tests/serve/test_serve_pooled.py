"""A pooled forecaster (``[data] pooled = true``) serves from its model folder (torch) and its exported file
(onnx) through a real server on 127.0.0.1: ``/v1/forecast`` answers one history of any series, including
series of very different scales in one request, as ``lstmkit.load(...).forecast`` does for each."""

import httpx
import numpy as np
import pytest
from serve_helpers import OPTIONS, LiveServer
from task_folders import pooled_forecaster_folder, write_count_panel, write_ragged_panel

from lstmkit.export import export_onnx
from lstmkit.serve import create_app, load_backend
from lstmkit.tasks.forecasting import forecast_each_from_model


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooled")
    panel = write_ragged_panel(root / "panel.csv", short=False)
    return pooled_forecaster_folder(root / "run", panel, epochs=5) / "model"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_pooled_forecaster_serves_each_series_as_load_forecasts_it(pooled, backend, tmp_path):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    model = pooled if backend == "torch" else export_onnx(pooled, tmp_path / "pooled.onnx").path
    expected = forecast_each_from_model(pooled)  # each series of the run's file, from its whole history
    smallest, largest = min(expected, key=lambda r: r.history.mean()), max(expected, key=lambda r: r.history.mean())
    assert largest.history.mean() > 100 * smallest.history.mean()
    with LiveServer(create_app(load_backend(model), OPTIONS)) as live, httpx.Client(base_url=live.url) as client:
        histories = [smallest.history[-30:].tolist(), largest.history[-30:].tolist()]  # one request, two scales
        response = client.post("/v1/forecast", json={"inputs": histories})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["series"] == ["value"] and answer["horizon"] == 12
        for got, want in zip(answer["forecasts"], (smallest, largest)):
            np.testing.assert_allclose(got, want.forecast, rtol=1e-4)


def test_a_served_count_model_takes_zeros_and_refuses_values_below_minus_the_offset(tmp_path):
    panel = write_count_panel(tmp_path / "counts.csv", count=4)
    count_run = pooled_forecaster_folder(tmp_path / "run", panel, "data.log_offset=1", "data.window=12", epochs=2)
    with LiveServer(create_app(load_backend(count_run / "model"), OPTIONS)) as live, \
            httpx.Client(base_url=live.url) as client:
        history = [[0.0]] * 10 + [[1.0]] * 14
        answer = client.post("/v1/forecast", json={"inputs": [history]})
        assert answer.status_code == 200, answer.text
        assert np.all(np.asarray(answer.json()["forecasts"]) > -1)
        history[5] = [-1.0]
        refused = client.post("/v1/forecast", json={"inputs": [history]})
        assert refused.status_code == 422
        assert refused.json() == {"error": "inputs[0][5][0]: expected a value above -1 (the model forecasts "
                                           "log(y + 1)), got -1"}
