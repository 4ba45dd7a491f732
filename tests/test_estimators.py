"""The scikit-learn estimators: sklearn's estimator checks, model selection, inputs, labels, CLI parity."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from lstmkit import LSTMClassifier, LSTMRegressor
from lstmkit.config import DataConfig, ModelConfig, TrainConfig, load_config
from lstmkit.data import load_source
from lstmkit.errors import ConfigError, ModelFolderError
from lstmkit.estimators import EXCLUDED_KEYS, PARAMETER_KEYS
from lstmkit.tasks.sequence_model import Model
from lstmkit.runs.train import run_training

CONFIGS = Path(__file__).parent.parent / "configs"
SRC = Path(__file__).parent.parent / "src"
TINY = dict(hidden_size=8, epochs=2, lr=1e-2, verbose=0, num_threads=1)


@pytest.fixture(scope="module")
def digits():
    source = load_source("digits")
    x, y = source.train.x, source.train.y  # (1347, 8, 8) in 0..16, digits 0..9
    return x[:600], y[:600], source.test.x[:200], source.test.y[:200]


# --------------------------------------------------------------------------------------------------------
# scikit-learn's estimator checks. Their data is 2-D (N, L): univariate sequences, one column per step.

# Each check a generic estimator is expected to fail, and why (checks not listed all pass).
EXPECTED_FAILURES = {
    LSTMRegressor: {
        "check_regressors_train": "asks for R^2 > 0.5 on make_regression's tabular data (1 informative column "
                                  "of 10, read here as 10 time steps) after a fit short enough for a test; "
                                  "the regressor is tested on a real sequence task instead "
                                  "(test_regressor_learns_the_adding_problem)",
    },
}


@pytest.mark.slow
@parametrize_with_checks(
    [LSTMClassifier(hidden_size=8, epochs=10, batch_size=16, lr=2e-2, verbose=0, num_threads=1),
     LSTMRegressor(hidden_size=8, epochs=3, batch_size=16, lr=2e-2, verbose=0, num_threads=1)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES.get(type(estimator), {}),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------------------
# Parameters are the config keys


def test_every_config_key_is_a_parameter_or_excluded_on_purpose():
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        mapped = {key for s, key in PARAMETER_KEYS.values() if s == section}
        names = {f.name for f in dataclasses.fields(cls)}
        assert mapped | EXCLUDED_KEYS[section] == names and not mapped & EXCLUDED_KEYS[section], section
    defaults = LSTMClassifier().to_config()
    assert defaults.model == dataclasses.replace(ModelConfig(), task="classifier")
    assert defaults.train == TrainConfig() and defaults.data == DataConfig()
    assert PARAMETER_KEYS["random_state"] == ("train", "seed") and PARAMETER_KEYS["verbose"] == ("train", "progress")


def test_from_config_and_get_params_round_trip():
    config = load_config(CONFIGS / "digits.toml")
    clf = LSTMClassifier.from_config(config)
    assert clf.get_params()["bidirectional"] is True and clf.get_params()["optimizer"] == "adamw"
    assert clf.random_state == 0 and clf.to_config().model == config.model and clf.to_config().train == config.train
    assert clone(clf).get_params() == clf.get_params()
    with pytest.raises(ValueError, match="expected a config with \\[model\\] task = 'regressor'"):
        LSTMRegressor.from_config(config)


def test_bad_parameters_are_reported_at_fit_by_their_config_key(digits):
    x, y, _, _ = digits
    with pytest.raises(ConfigError, match=r"config \[model\] hidden_size: expected a positive integer, got 0"):
        LSTMClassifier(hidden_size=0, verbose=0).fit(x, y)
    with pytest.raises(ConfigError, match=r"\[train\] optimizer: expected one of"):
        LSTMClassifier(optimizer="adagrad", verbose=0).fit(x, y)
    with pytest.raises(ConfigError, match=r"\[train\] seed: expected a non-negative integer, got -1"):
        LSTMClassifier(random_state=-1, verbose=0).fit(x, y)


def test_numpy_scalars_tuples_and_random_states_are_accepted(digits):
    x, y, xt, yt = digits
    config = LSTMClassifier(hidden_size=np.int64(8), lr=np.float32(1e-2), zoneout=(0.1, 0.0),
                            conv_channels=(4, 8), random_state=np.random.RandomState(3)).to_config()
    assert config.model.hidden_size == 8 and config.model.zoneout == [0.1, 0.0]
    assert config.model.conv_channels == [4, 8] and config.train.seed >= 0
    assert LSTMClassifier(**{**TINY, "epochs": 1, "random_state": None}).fit(x, y).score(xt, yt) > 0.1


# --------------------------------------------------------------------------------------------------------
# Labels and inputs


def test_string_and_non_contiguous_labels_come_back(digits):
    x, y, xt, yt = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = LSTMClassifier(**TINY).fit(x, names[y])
    assert list(clf.classes_) == sorted(names)
    assert set(clf.predict(xt)) <= set(names) and clf.score(xt, names[yt]) > 0.3
    proba = clf.predict_proba(xt[:5])
    assert proba.shape == (5, 10)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(xt[:5]))
    sparse = LSTMClassifier(**TINY).fit(x, y * 10 - 7)
    assert sparse.classes_.tolist() == list(range(-7, 93, 10)) and set(sparse.predict(xt)) <= set(sparse.classes_)


def test_inputs_3d_arrays_variable_length_lists_and_2d_columns(digits):
    x, y, xt, yt = digits
    seqs = [img[: 3 + i % 6] for i, img in enumerate(x)]  # 3..8 rows each
    clf = LSTMClassifier(**TINY).fit(seqs, y)
    assert clf.n_features_in_ == 8 and clf.input_format_ == "sequences"
    assert clf.predict([img[:5] for img in xt[:3]] + [xt[3]]).shape == (4,)
    wide = LSTMClassifier(**TINY).fit(x.reshape(len(x), -1), y)  # (N, 64): 64 steps of 1 feature
    assert wide.n_features_in_ == 64 and wide.input_format_ == "columns"
    with pytest.raises(ValueError, match="X has 63 features, but LSTMClassifier is expecting 64 features"):
        wide.predict(xt.reshape(len(xt), -1)[:, :63])
    with pytest.raises(ValueError, match="X has 7 features per step, but LSTMClassifier is expecting 8"):
        clf.predict(xt[:, :, :7])


def test_long_dataframes_with_id_and_time_columns(digits):
    pd = pytest.importorskip("pandas")
    x, y, xt, yt = digits
    n = 200
    rows = [{"sample": f"s{i:03d}", "t": t, **{f"c{j}": x[i, t, j] for j in range(8)}}
            for i in range(n) for t in range(8)]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # rows shuffled: time orders the steps
    labels = pd.Series(y[:n], index=[f"s{i:03d}" for i in range(n)]).sample(frac=1.0, random_state=1)
    clf = LSTMClassifier(**TINY, id_col="sample", time_col="t").fit(frame, labels)
    order = [int(s[1:]) for s in dict.fromkeys(frame["sample"])]  # samples in order of first appearance
    np.testing.assert_allclose(clf.predict_proba(frame), clf.predict_proba(x[order]), rtol=1e-5, atol=1e-6)
    # The Series was aligned by id: the same as labels given in the samples' order.
    in_order = LSTMClassifier(**TINY, id_col="sample", time_col="t").fit(frame, y[order])
    np.testing.assert_array_equal(in_order.predict_proba(frame), clf.predict_proba(frame))


def test_a_wide_dataframe_keeps_its_column_names(digits):
    pd = pytest.importorskip("pandas")
    x, y, xt, yt = digits
    frame = pd.DataFrame(x.reshape(len(x), -1), columns=[f"p{i}" for i in range(64)])
    clf = LSTMClassifier(**{**TINY, "epochs": 1}).fit(frame, y)
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.predict(frame.iloc[:3]).shape == (3,)


# --------------------------------------------------------------------------------------------------------
# Model selection and composition


def test_cross_val_score_grid_search_pipeline_and_clone(digits):
    x, y, xt, yt = digits
    scores = cross_val_score(LSTMClassifier(**TINY), x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.2
    search = GridSearchCV(LSTMClassifier(**TINY), {"hidden_size": [4, 12]}, cv=2).fit(x, y)
    assert search.best_params_["hidden_size"] in (4, 12) and search.score(xt, yt) > 0.2
    pipeline = make_pipeline(FunctionTransformer(lambda a: a / 16.0), LSTMClassifier(**TINY)).fit(x, y)
    assert pipeline.score(xt, yt) > 0.2
    fitted = LSTMClassifier(**TINY).fit(x, y)
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params() and not hasattr(fresh, "model_")
    np.testing.assert_array_equal(fresh.fit(x, y).predict_proba(xt), fitted.predict_proba(xt))


def test_regressor_learns_the_adding_problem():
    from lstmkit.data.synthetic import adding_problem

    rng = np.random.default_rng(0)
    x, y = adding_problem(1200, 10, rng)
    xv, yv = adding_problem(300, 10, rng)
    reg = LSTMRegressor(hidden_size=24, epochs=12, lr=1e-2, normalize=False, verbose=0, num_threads=1).fit(x, y)
    assert reg.predict(xv[:4]).shape == (4,) and reg.score(xv, yv) > 0.4  # R^2
    two = LSTMRegressor(**TINY).fit(x, np.stack([y, -y], axis=1))
    assert two.predict(xv[:4]).shape == (4, 2)


# --------------------------------------------------------------------------------------------------------
# The same run as the CLI, and the same model folder


def test_the_estimator_matches_the_cli_run_exactly(tmp_path):
    overrides = ["train.epochs=2", "model.hidden_size=16", "train.num_threads=1", "train.progress=false",
                 "train.tensorboard=false"]
    cli = run_training(load_config(CONFIGS / "digits.toml", overrides), tmp_path / "run")
    source = load_source("digits")
    # configs/digits.toml, spelled as arguments
    clf = LSTMClassifier(hidden_size=16, bidirectional=True, label_smoothing=0.1, epochs=2, batch_size=32,
                         optimizer="adamw", weight_decay=0.05, lr=3e-3, schedule="cosine", grad_clip=1.0,
                         val_fraction=0.1, random_state=0, num_threads=1, verbose=0)
    clf.fit(source.train.x, source.train.y)
    assert clf.score(source.test.x, source.test.y) == cli.metrics["test_accuracy"]
    assert clf.best_epoch_ == cli.metrics["best_epoch"]
    cli_model = Model.load(cli.model_dir)
    np.testing.assert_array_equal(clf.predict_proba(source.test.x), cli_model.predict_proba(source.test.x))

    # A folder written by lstmkit train loads as an estimator whose classes are the labels it learnt, of the
    # type the data came with: scored on the source's own integer labels (no "Mix of label input types").
    loaded = LSTMClassifier.load(cli.model_dir)
    assert loaded.classes_.tolist() == list(range(10)) and loaded.classes_.dtype == source.test.y.dtype
    assert loaded.hidden_size == 16
    assert loaded.score(source.test.x, source.test.y) == cli.metrics["test_accuracy"]
    assert loaded.predict(source.test.x[:3]).dtype == source.test.y.dtype
    with pytest.raises(ModelFolderError, match="holds a 'classifier' model; LSTMRegressor loads 'regressor'"):
        LSTMRegressor.load(cli.model_dir)


def test_save_and_load_give_back_the_estimator(digits, tmp_path):
    x, y, xt, yt = digits
    clf = LSTMClassifier(**TINY).fit(x.reshape(len(x), -1), np.where(y % 2 == 0, "even", "odd"))
    loaded = LSTMClassifier.load(clf.save(tmp_path / "m"))
    assert loaded.get_params() == clf.get_params()
    assert loaded.classes_.tolist() == ["even", "odd"] and loaded.input_format_ == "columns"
    np.testing.assert_array_equal(loaded.predict_proba(xt.reshape(len(xt), -1)),
                                  clf.predict_proba(xt.reshape(len(xt), -1)))
    assert (tmp_path / "m" / "model.safetensors").is_file()  # the CLI's model folder; nothing pickled
    reg = LSTMRegressor(**TINY).fit(x, y.astype(np.float32))
    np.testing.assert_array_equal(LSTMRegressor.load(reg.save(tmp_path / "r")).predict(xt), reg.predict(xt))


def test_fit_shows_the_progress_bar_unless_verbose_is_0(digits, capsys):
    x, y, _, _ = digits
    LSTMClassifier(**{**TINY, "verbose": 1, "epochs": 1}).fit(x, y)
    assert "epoch 1/1" in capsys.readouterr().err
    LSTMClassifier(**{**TINY, "epochs": 1}).fit(x, y)
    assert "epoch 1/1" not in capsys.readouterr().err


def test_import_lstmkit_stays_light():
    code = "import sys, lstmkit; assert 'torch' not in sys.modules and 'LSTMClassifier' in dir(lstmkit)"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC)})
    import lstmkit

    assert lstmkit.LSTMClassifier is LSTMClassifier and lstmkit.Model is Model
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        lstmkit.Nope
