"""The ``longlag`` and ``train`` commands on the new recipes: one short epoch each, into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.data.ucr import aeon_data_dir

CONFIGS = Path(__file__).parent.parent / "configs"
QUICK = ["--set", "train.epochs=1", "--set", "train.progress=false", "--set", "train.tensorboard=false",
         "--set", "model.hidden_size=8"]


@pytest.mark.parametrize("rnn", [False, True])
def test_longlag_trains_and_reports_the_papers_criterion(tmp_path, capsys, rnn):
    out = tmp_path / "run"
    argv = ["longlag", str(CONFIGS / "adding.toml"), "--length", "20", "--samples", "64", "--out", str(out), *QUICK]
    assert main(argv + (["--rnn"] if rnn else ["--variant", "peephole"])) == 0
    printed = capsys.readouterr().out
    assert "by the 1997 criterion" in printed and "of 2560 test sequences" in printed
    report = json.loads((out / "criterion.json").read_text())
    assert report["task"] == "adding" and report["sequences"] == 2560 and report["length"] == 20
    assert report["model"] == ("rnn-regressor" if rnn else "regressor")
    assert not report["solved"]  # one epoch on 64 sequences learns nothing
    assert (out / "report.html").is_file()  # the RNN's report says it has no gates instead of failing


def test_longlag_refuses_a_recipe_that_is_not_a_long_lag_task(tmp_path, capsys):
    assert main(["longlag", str(CONFIGS / "digits.toml"), "--out", str(tmp_path / "run")]) == 2
    assert "longlag: expected a config whose [data] name is one of adding" in capsys.readouterr().err


#: Each UCR/UEA recipe's archive: test sequences, classes and features per step (the archives' own sizes).
UCR_SIZES = {"japanese_vowels": (370, 9, 12), "gunpoint": (150, 2, 1), "basic_motions": (40, 4, 6),
             "arrowhead": (175, 3, 1), "italy_power_demand": (1029, 2, 1)}


@pytest.mark.skipif(aeon_data_dir() is None, reason="aeon (the [aeon] extra) is not installed")
@pytest.mark.parametrize("recipe", sorted(UCR_SIZES))
def test_each_ucr_recipe_runs_one_epoch(tmp_path, capsys, recipe):
    """One epoch on the archive's training split, then the whole of its test split evaluated: the model has
    the archive's features and classes, and the reported accuracy is the confusion matrix's."""
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / f"{recipe}.toml"), "--out", str(out), *QUICK]) == 0
    test_sequences, classes, features = UCR_SIZES[recipe]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and (out / "model" / "model.safetensors").is_file()
    meta = json.loads((out / "model" / "meta.json").read_text())
    assert len(meta["label_names"]) == classes and meta["input_size"] == features
    matrix = json.loads((out / "evaluation.json").read_text())["confusion_matrix"]
    assert len(matrix) == classes and all(len(row) == classes for row in matrix)
    assert sum(map(sum, matrix)) == test_sequences  # every test sequence, once
    correct = sum(matrix[k][k] for k in range(classes))
    assert metrics["test_accuracy"] == pytest.approx(correct / test_sequences)


def test_longlag_reports_the_embedded_reber_criterion(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["longlag", str(CONFIGS / "embedded_reber.toml"), "--samples", "32", "--out", str(out), *QUICK,
            "--set", "train.report=false"]
    assert main(argv) == 0
    assert "embedded-reber next-symbols: " in capsys.readouterr().out
    report = json.loads((out / "criterion.json").read_text())
    assert report["task"] == "embedded-reber" and report["sequences"] == 256 and report["model"] == "next-symbols"
    assert 0.0 <= report["step_accuracy"] <= 1.0 and not report["solved"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_step_accuracy"] <= 1.0
