"""Data-parallel training: 2 processes with the same global batch reach the 1-process weights."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lstmkit.cli import main

CONFIG = str(Path(__file__).parent.parent / "configs" / "digits.toml")
SETTINGS = ["train.device=cpu", "train.progress=false", "train.report=false", "model.hidden_size=16", "model.bidirectional=false", "train.epochs=2",
            "train.batch_size=64", "train.seed=1", "model.label_smoothing=0", "train.weight_decay=0"]


def _train(out, *extra):
    args = ["train", CONFIG, "--out", str(out)]
    for setting in SETTINGS:
        args += ["--set", setting]
    assert main(args + list(extra)) == 0
    return load_file(str(out / "model" / "model.safetensors")), json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path, capsys):
    one, one_metrics = _train(tmp_path / "one")
    two, two_metrics = _train(tmp_path / "two", "--nproc", "2")
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=2e-5, err_msg=key)
    assert two_metrics["test_accuracy"] == pytest.approx(one_metrics["test_accuracy"], abs=0.01)
    # Only rank 0 wrote the run folder, and the all-reduced metrics cover the whole training split.
    rows = (tmp_path / "two" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2
    assert "run folder" in capsys.readouterr().out


def test_an_odd_batch_for_two_processes_is_refused(tmp_path, capsys):
    assert main(["train", CONFIG, "--out", str(tmp_path / "r"), "--nproc", "2", "--set", "train.batch_size=63",
                 "--set", "train.progress=false", "--set", "train.epochs=1"]) == 2
    assert "batch_size: expected a multiple of the 2 processes, got 63" in capsys.readouterr().err


def test_a_non_positive_process_count_is_refused(tmp_path, capsys):
    assert main(["train", CONFIG, "--out", str(tmp_path / "r"), "--nproc", "0"]) == 2
    assert "train --nproc: expected a positive number of processes, got 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_gpu_workers_without_a_gpu_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["train", CONFIG, "--out", str(tmp_path / "r"), "--nproc", "2", "--set", 'train.device="cuda"']) == 2
    assert 'config [train] device: "cuda" was asked for, but PyTorch sees no CUDA device' in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_more_gpu_workers_than_gpus_are_refused_before_any_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    assert main(["train", CONFIG, "--out", str(tmp_path / "r"), "--nproc", "2"]) == 2
    assert ("--nproc 2: each GPU worker needs its own GPU and this machine has 1; use --nproc 1, or "
            '--set train.device="cpu" for CPU workers') in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
