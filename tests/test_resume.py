"""Crash safety: a run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted one."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lstmkit.cli import main
from lstmkit.config import load_config
from lstmkit.runs.train import run_training

# Zoneout and dropout draw random numbers every batch, so a resume that lost the RNG state would differ.
OVERRIDES = ["train.progress=false", "train.report=false", "model.hidden_size=16", "train.epochs=3", "train.num_threads=1",
             "train.checkpoint_every=4", "model.zoneout=0.1", "model.head_dropout=0.2", "train.seed=5",
             "train.schedule=cosine", "train.patience=5"]

# The worker trains like `lstmkit train`, and kills itself with SIGKILL in the middle of epoch 2, two
# batches after a checkpoint: no exception handler, atexit or flush runs.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import lstmkit.runs.train as train
    from lstmkit.training.callbacks import Callback
    from lstmkit.config import load_config

    class Kill(Callback):
        def on_batch_end(self, trainer, step, logs):
            if trainer.position.epoch == 2 and step == 10:
                os.kill(os.getpid(), signal.SIGKILL)

    make = train.run_callbacks
    train.run_callbacks = lambda *a: make(*a) + [Kill()]
    train.run_task(load_config(None, sys.argv[2:]), Path(sys.argv[1]))
""")


def _rows(path):
    with open(path) as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    reference = run_training(load_config(None, OVERRIDES), tmp_path / "reference")

    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(killed), *OVERRIDES],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / "model").exists() and len(_rows(killed / "metrics.csv")) == 1

    assert main(["train", "--resume", str(killed)]) == 0
    ours, theirs = load_file(str(killed / "model" / "model.safetensors")), load_file(
        str(reference.model_dir / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert _rows(killed / "metrics.csv") == _rows(reference.run_dir / "metrics.csv")
    assert len(_rows(killed / "metrics.csv")) == 3
    assert not list((killed / "checkpoints").glob(".*.tmp-*"))  # issue 17 item 10: no temporaries left
    assert (killed / "checkpoints" / "last.pt").read_bytes()[:1] != b"\x80"  # safetensors, not a pickle


def test_resume_errors_are_clear(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no checkpoints/last.pt to continue from" in capsys.readouterr().err
    assert main(["train", "configs/digits.toml", "--resume", str(tmp_path)]) == 2
    assert "give no CONFIG" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "expected a CONFIG file" in capsys.readouterr().err


def test_a_finished_run_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    config = Path(__file__).parent.parent / "configs" / "digits.toml"
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
