"""Pooled forecasting runs every series' window through the network in one batch: the batch must give what a
loop over the series, one window at a time, gives."""
import numpy as np
import pytest

from lstmkit.data.windows import SeriesScaler
from lstmkit.errors import DataError
from lstmkit.tasks import forecasting
from lstmkit.tasks.forecasting import forecast_path, forecast_paths


def one_at_a_time(predict, scaler, history, steps, window, horizon):
    """The reference: one series, one window per call, fed back until ``steps`` (the loop before batching)."""
    z = scaler.transform(history)
    recent, chunks = z[-window:], []
    while sum(len(c) for c in chunks) < steps:
        level = scaler.window_level(recent)
        ahead = np.asarray(predict((recent - level)[None].astype(np.float32)), np.float64).reshape(horizon, -1) + level
        chunks.append(ahead)
        recent = np.concatenate([recent, ahead])[-window:]
    return scaler.inverse(np.concatenate(chunks)[:steps], history)


def network(x):
    """A stand-in network whose outputs depend on each window's own values, nonlinearly: (N, W, 1) -> (N, 3)."""
    last, mean = x[:, -1, 0], x.mean(axis=(1, 2))
    return np.stack([np.tanh(last) + 0.1 * k * mean for k in range(3)], axis=1)


@pytest.mark.parametrize("scaling", [dict(log=True, difference=1), dict(log=True, level=4), dict(normalize=True)])
def test_the_batch_gives_what_one_series_at_a_time_gives(monkeypatch, scaling):
    monkeypatch.setattr(forecasting, "FORECAST_BATCH", 2)  # 5 series: batches of 2, 2 and 1
    rng = np.random.default_rng(0)
    histories = [np.exp(rng.normal(size=(n, 1)).cumsum(axis=0) * 0.1) + 1 for n in (9, 14, 30, 11, 20)]
    scaler = SeriesScaler(**scaling).fit(np.concatenate(histories))
    batched = forecast_paths(network, scaler, histories, 7, 6, 3)  # 7 steps: 3 calls of horizon 3, fed back
    assert [b.shape for b in batched] == [(7, 1)] * 5
    for history, forecast in zip(histories, batched):
        np.testing.assert_allclose(forecast, one_at_a_time(network, scaler, history, 7, 6, 3), rtol=1e-6)
        np.testing.assert_allclose(forecast, forecast_path(network, scaler, history, 7, 6, 3), rtol=1e-12)


def test_a_history_shorter_than_the_window_is_refused_by_name_of_the_need():
    scaler = SeriesScaler(log=True, difference=1).fit(np.arange(1.0, 30.0)[:, None])
    with pytest.raises(DataError, match=r"forecast: expected at least 7 points of history \(window 6 \+ difference 1\), "
                                        r"got 5"):
        forecast_paths(network, scaler, [np.arange(1.0, 20.0)[:, None], np.arange(1.0, 6.0)[:, None]], 3, 6, 3)
