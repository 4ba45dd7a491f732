"""Hyperparameter search: a 3-trial Optuna study end to end, pruning, and clear errors for bad spaces."""

from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.config import load_config

optuna = pytest.importorskip("optuna")

CONFIGS = Path(__file__).parent.parent / "configs"
BASE = ["--set", "train.progress=false", "--set", "train.epochs=2", "--set", "model.bidirectional=false",
        "--set", "train.num_threads=1"]


def test_three_trials_write_a_ready_recipe(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text('[train.lr]\nlow = 1e-3\nhigh = 3e-2\nlog = true\n\n[model.hidden_size]\nlow = 8\nhigh = 24\n'
                     'step = 8\n\n[model.readout]\nchoices = ["last", "mean"]\n')
    out = tmp_path / "tune"
    assert main(["tune", str(CONFIGS / "digits.toml"), "--space", str(space), "--trials", "3", "--out", str(out),
                 *BASE]) == 0
    printed = capsys.readouterr().out
    assert "3 trials" in printed and "best recipe" in printed
    study = optuna.load_study(study_name="lstmkit", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    best = load_config(out / "best.toml")  # a ready recipe: it loads strictly
    assert best.model.hidden_size == study.best_params["model.hidden_size"]
    assert best.train.lr == pytest.approx(study.best_params["train.lr"])
    assert best.train.epochs == 2 and best.data.name == "digits"
    rows = (out / "trials.csv").read_text().strip().splitlines()
    assert rows[0] == "trial,state,value,train.lr,model.hidden_size,model.readout" and len(rows) == 4
    # The same storage continues the study from another process or machine.
    assert main(["tune", str(CONFIGS / "digits.toml"), "--space", str(space), "--trials", "1", "--out", str(out),
                 *BASE]) == 0
    assert "4 trials" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("[train.lr]\nlow = 1\n", "expected high to be a finite number"),
    ("[train.lr]\nlow = 2.0\nhigh = 1.0\n", "expected low < high"),
    ("[train.lr]\nlow = 0.0\nhigh = 1.0\nlog = true\n", "a log scale needs low > 0"),
    ("[train.nope]\nlow = 1\nhigh = 2\n", "'train.nope' is not a config key"),
    ("[model.hidden_size]\nlow = -4\nhigh = 2\n", "expected a positive integer"),
    ("[model.readout]\nchoices = []\n", "expected choices to be a non-empty list"),
    ("[model.readout]\nchoices = [\"last\", \"middle\"]\n", 'expected one of "last", "mean", "max"'),
    ("[train.lr]\nlow = 1e-3\nhigh = 1e-2\nspread = 3\n", "unknown setting 'spread'"),
    ("[optim.lr]\nlow = 1\nhigh = 2\n", "expected tables [data.KEY]"),
    ("", "expected at least one key"),
    ("[train.lr\n", "cannot be read as TOML"),
])
def test_bad_search_spaces_are_refused_with_the_key_named(tmp_path, capsys, text, message):
    space = tmp_path / "space.toml"
    space.write_text(text)
    assert main(["tune", str(CONFIGS / "digits.toml"), "--space", str(space), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit: error: search space") and message in err and "Traceback" not in err


def test_the_shipped_space_loads():
    from lstmkit.runs.tune import load_space

    space = load_space(CONFIGS / "spaces" / "digits.toml", load_config(CONFIGS / "digits.toml"))
    assert {d.key for d in space} == {"train.lr", "model.hidden_size", "train.weight_decay", "model.readout"}


def test_a_failing_trial_is_one_line_without_optuna_s_traceback(tmp_path, capsys):
    """Issue 17 item 8: a trial that fails (proj_size >= hidden_size only fails when the network is built)
    printed optuna's traceback before lstmkit's error."""
    space = tmp_path / "space.toml"
    space.write_text("[model.proj_size]\nchoices = [64]\n")
    status = main(["tune", str(CONFIGS / "digits.toml"), "--space", str(space), "--trials", "1", "--out",
                   str(tmp_path / "tune"), *BASE, "--set", "model.hidden_size=8"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "Trial 0 failed" not in err
    assert err.strip().splitlines()[-1] == (
        "lstmkit: error: tune: trial 0 (model.proj_size=64) failed: config [model] proj_size: expected less than "
        "hidden_size (8), got 64")
