"""The Python API: ``Model`` fit/evaluate/predict/save/load, callbacks, regression and variable lengths."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from lstmkit.training.callbacks import EarlyStopping, LambdaCallback, LearningRateSchedule, TensorBoard
from lstmkit.data.arrays import as_dataset, from_long_table, pad_sequences
from lstmkit.data.synthetic import adding_problem
from lstmkit.errors import ConfigError, DataError
from lstmkit.tasks.sequence_model import Model

FAST = ["train.progress=false", "model.hidden_size=16", "train.epochs=2", "train.num_threads=1", "train.lr=1e-2"]


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    return x[:1400], d.target[:1400], x[1400:], d.target[1400:]


def test_fit_evaluate_predict_save_load(digits, tmp_path):
    x, y, xt, yt = digits
    rows = []
    model = Model.from_config(None, FAST).fit((x, y), val=(xt, yt),
                                              callbacks=[LambdaCallback(on_epoch_end=lambda e, r: rows.append(r))])
    assert [r["epoch"] for r in rows] == [1, 2] and model.history == rows
    report = model.evaluate((xt, yt))
    assert report["accuracy"] > 0.3 and len(report["confusion_matrix"]) == 10
    probs = model.predict_proba(xt[:5])
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(xt[:5]), probs.argmax(1))
    loaded = Model.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_proba(xt[:5]), probs, rtol=1e-5, atol=1e-6)


def test_the_model_holds_the_best_epoch_weights(digits):
    x, y, xt, yt = digits
    model = Model.from_config(None, FAST + ["train.epochs=3"]).fit((x, y), val=(xt, yt))
    best = max(model.history, key=lambda r: r["val_accuracy"])
    assert model.best_epoch == best["epoch"]
    assert model.evaluate((xt, yt))["accuracy"] == pytest.approx(best["val_accuracy"])


def test_regression_on_the_adding_problem_beats_the_mean():
    rng = np.random.default_rng(0)
    x, y = adding_problem(1500, 12, rng)
    xv, yv = adding_problem(300, 12, rng)
    model = Model.from_config(None, FAST + ["model.task=regressor", "train.epochs=12", "train.lr=1e-2",
                                            "data.normalize=false", "model.hidden_size=24"])
    model.fit((x, y), val=(xv, yv))
    metrics = model.evaluate((xv, yv))
    assert set(metrics) == {"loss", "mse", "mae", "rmse"}
    assert metrics["loss"] < 0.6 * np.var(yv)  # the mean predictor's MSE is var(y)
    assert metrics["mse"] == pytest.approx(metrics["loss"], rel=1e-4)  # the loss is MSE here
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5, rel=1e-4)
    assert model.predict(xv[:4]).shape == (4,)
    with pytest.raises(ConfigError, match="predicts values, not class probabilities"):
        model.predict_proba(xv[:2])


def test_variable_length_lists_train_and_padding_does_not_leak(digits):
    x, y, xt, yt = digits
    seqs = [img[: 3 + i % 6] for i, img in enumerate(x)]
    model = Model.from_config(None, FAST).fit((seqs, y))
    short = [xt[0][:4]]
    padded = np.zeros((1, 8, 8), dtype=np.float32)
    padded[0, :4] = xt[0][:4]
    padded[0, 4:] = 100.0  # garbage past the length must not matter
    np.testing.assert_allclose(model.predict_proba(short), model.predict_proba(padded, lengths=[4]), rtol=1e-5)


def test_early_stopping_and_learning_rate_schedule_callbacks(digits):
    x, y, xt, yt = digits
    model = Model.from_config(None, FAST + ["train.epochs=10", "train.optimizer=sgd", "train.momentum=0"])
    lrs = []
    model.fit((x, y), val=(xt, yt), callbacks=[
        LearningRateSchedule(lambda epoch, lr: 1e-12),
        EarlyStopping("val_loss", patience=1),
        LambdaCallback(on_epoch_end=lambda e, r: lrs.append(r["lr"]))])
    assert len(model.history) == 2 and lrs == [1e-12, 1e-12]


@pytest.mark.skipif(not TensorBoard.available(), reason="tensorboard is not installed")
def test_tensorboard_writes_event_files(digits, tmp_path):
    x, y, xt, yt = digits
    Model.from_config(None, FAST).fit((x, y), val=(xt, yt), callbacks=[TensorBoard(tmp_path / "tb")])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert {"loss/train", "loss/val", "accuracy/val"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2]


def test_user_errors_name_the_problem(digits):
    x, y, xt, yt = digits
    with pytest.raises(DataError, match="not trained yet"):
        Model.from_config(None, FAST).predict(xt)
    with pytest.raises(ConfigError, match="the data has values targets"):
        Model.from_config(None, FAST).fit((x, y.astype(np.float32) + 0.5))
    model = Model.from_config(None, FAST + ["train.epochs=1"]).fit((x, y))
    with pytest.raises(DataError, match=r"expected shape \(N, 8, 8\), got \(2, 8, 5\)"):
        model.predict(np.zeros((2, 8, 5)))
    with pytest.raises(DataError, match="expected an ArrayDataset or a tuple"):
        model.evaluate([1, 2, 3])
    with pytest.raises(ConfigError, match="monitor: expected one of"):
        Model.from_config(None, FAST + ["train.monitor=val_mae"]).fit((x, y), val=(xt, yt))


def test_array_helpers():
    x, lengths = pad_sequences([np.ones((2, 3)), np.ones((4, 3))])
    assert x.shape == (2, 4, 3) and lengths.tolist() == [2, 4] and x[0, 2:].sum() == 0
    with pytest.raises(DataError, match=r"X\[1\]: expected 3 features per step"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(DataError, match="empty list"):
        pad_sequences([])
    assert as_dataset(np.zeros((3, 5)), [0, 1, 0]).x.shape == (3, 5, 1)
    assert as_dataset(np.zeros((3, 5, 2)), [0.5, 1, 0]).targets == "values"
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": ["b", "b", "a", "b"], "time": [2, 1, 1, 3], "v": [20.0, 10.0, 1.0, 30.0]})
    x, lengths, ids = from_long_table(frame)
    assert ids == ["b", "a"] and lengths.tolist() == [3, 1]
    np.testing.assert_array_equal(x[0, :, 0], [10, 20, 30])
    with pytest.raises(DataError, match="expected columns 'id' and 'time'"):
        from_long_table(frame.rename(columns={"time": "t"}))
