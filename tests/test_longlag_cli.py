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


@pytest.mark.skipif(aeon_data_dir() is None, reason="aeon (the [aeon] extra) is not installed")
@pytest.mark.parametrize("recipe", ["japanese_vowels", "gunpoint", "basic_motions", "arrowhead", "italy_power_demand"])
def test_each_ucr_recipe_runs_one_epoch(tmp_path, capsys, recipe):
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / f"{recipe}.toml"), "--out", str(out), *QUICK]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and (out / "model" / "model.safetensors").is_file()


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
