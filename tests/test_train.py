"""The training loop: determinism, early stopping, optimisers and schedules, data checks."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lstmkit.cli import main
from lstmkit.config import load_config
from lstmkit.data import write_idx
from lstmkit.runs.train import run_training

CONFIGS = Path(__file__).parent.parent / "configs"
FAST = ["train.progress=false", "train.report=false", "model.hidden_size=16", "train.epochs=1"]


def test_the_same_seed_gives_bit_identical_weights(tmp_path):
    runs = []
    for name in ("a", "b"):
        result = run_training(load_config(None, FAST + ["train.seed=3"]), tmp_path / name)
        runs.append(load_file(str(result.model_dir / "model.safetensors")))
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    other = load_file(str(run_training(load_config(None, FAST + ["train.seed=4"]), tmp_path / "c").model_dir
                          / "model.safetensors"))
    assert any(not np.array_equal(runs[0][k], other[k]) for k in other)


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    cfg = load_config(None, FAST + ["train.epochs=10", "train.patience=1", "train.lr=1e-12",
                                    "train.optimizer=sgd", "train.momentum=0"])
    result = run_training(cfg, tmp_path / "run")
    assert result.metrics["epochs_run"] == 2 and result.metrics["best_epoch"] == 1
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()) == 1 + 2


@pytest.mark.parametrize("overrides", [
    ["train.optimizer=sgd", "train.momentum=0.9", "train.schedule=step", "train.step_size=1"],
    ["train.optimizer=adamw", "train.schedule=onecycle", "train.epochs=2"],
    ["train.schedule=cosine", "data.val_fraction=0", "train.grad_clip=0"],
    ["model.conv=conv2d", "model.conv_channels=[4]", "model.cell_activation=relu", "model.hidden_activation=relu"],
    ["model.layer_norm=true", "model.peephole=true", "model.zoneout=0.1"],
])
def test_optimisers_schedules_and_front_ends_train(tmp_path, overrides):
    result = run_training(load_config(None, FAST + overrides), tmp_path / "run")
    assert result.metrics["test_accuracy"] > 0.1  # above chance after one epoch
    lrs = [float(line.split(",")[1]) for line in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert all(lr > 0 for lr in lrs)


def test_cosine_schedule_decays_the_learning_rate(tmp_path):
    run_training(load_config(None, FAST + ["train.epochs=3", "train.schedule=cosine", "train.lr=0.01"]), tmp_path / "r")
    lrs = [float(line.split(",")[1]) for line in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1:]]
    assert lrs[0] == pytest.approx(0.01) and lrs[0] > lrs[1] > lrs[2]


def _idx_folder(folder, n_train, n_test, images=None):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 255, (n, 28, 28), dtype=np.uint8) if images is None else images[:n])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return folder


def test_an_empty_dataset_is_refused_before_the_run_folder_is_made(tmp_path, capsys):
    data = _idx_folder(tmp_path / "mnist", 0, 5)
    status = main(["train", str(CONFIGS / "mnist.toml"), "--data-dir", str(data), "--out", str(tmp_path / "run"),
                   "--set", "train.progress=false"])
    assert status == 2
    err = capsys.readouterr().err
    assert "empty" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_local_idx_folder_trains(tmp_path):
    data = _idx_folder(tmp_path / "mnist", 60, 20)
    cfg = load_config(None, FAST + ["data.name=mnist", f'data.data_dir="{data}"', "data.download=false"])
    result = run_training(cfg, tmp_path / "run")
    meta = json.loads((result.model_dir / "meta.json").read_text())
    assert meta["input_size"] == 28 and meta["sequence_length"] == 28 and meta["data_name"] == "mnist"


def test_predict_refuses_nan(tmp_path, capsys):
    result = run_training(load_config(None, FAST), tmp_path / "run")
    bad = np.zeros((2, 8, 8), dtype=np.float32)
    bad[1, 3, 4] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    assert main(["predict", str(result.model_dir), str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "NaN/Inf" in err and "(1, 3, 4)" in err


def test_a_report_failure_keeps_the_finished_run(tmp_path, monkeypatch, caplog):
    import lstmkit.report

    def broken(run_dir):
        raise RuntimeError("no figures today")

    monkeypatch.setattr(lstmkit.report, "write_report", broken)
    cfg = load_config(None, [item for item in FAST if item != "train.report=false"])
    result = run_training(cfg, tmp_path / "run")
    assert (result.model_dir / "model.safetensors").is_file() and (tmp_path / "run" / "metrics.json").is_file()
    assert "its report could not be written: RuntimeError: no figures today" in caplog.text


def test_a_diverging_run_stops_with_one_line_instead_of_training_on_nan(tmp_path, capsys):
    from lstmkit.cli import main

    out = tmp_path / "run"
    status = main(["train", str(Path(__file__).parent.parent / "configs" / "digits.toml"), "--out", str(out),
                   "--set", "train.lr=1000", "--set", "train.optimizer=\"sgd\"", "--set", "train.momentum=0.9",
                   "--set", "train.grad_clip=0", "--set", "train.epochs=2", "--set", "model.hidden_size=16",
                   "--set", "train.progress=false", "--set", "train.num_threads=1"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lstmkit: error: training diverged: the loss is nan at epoch 1, batch ") and \
        "lower [train] lr (now 1000) or set [train] grad_clip (now 0)" in err, err
    assert not (out / "model").exists()


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_a_time_budget_closes_the_epoch_in_progress_and_anneals_over_the_budget(tmp_path, monkeypatch, caplog,
                                                                                 clock):
    """[train] max_minutes on a clock that ticks one second per reading: the run stops at the first batch past
    the budget, mid-epoch, with that epoch validated, logged and the model tested; cosine decays over the budget."""
    import itertools
    import logging

    from lstmkit.training import trainer as trainer_module
    from lstmkit.training.callbacks import load_checkpoint

    ticks = itertools.count()
    monkeypatch.setattr(trainer_module, "_clock" if clock == "wall" else "_cpu_clock", lambda: float(next(ticks)))
    config = load_config(None, FAST + ["train.epochs=5", "train.max_minutes=0.25", "train.schedule=cosine",
                                       "train.lr=0.01", "train.batch_size=16", f"train.budget_clock={clock}"])
    with caplog.at_level(logging.INFO, logger="lstmkit.training.trainer"):
        result = run_training(config, tmp_path / "run")
    stop = [r.getMessage() for r in caplog.records if "time budget" in r.getMessage()]
    assert stop and stop[0].startswith("the time budget of 0.25 minutes is spent: training ends after batch")
    batches = int(stop[0].split("batch ")[1].split(" of")[0])
    assert 5 <= batches < 60  # well inside the first epoch (its 1,000+ training digits make 60+ batches of 16)
    assert result.metrics["epochs_run"] == 1 and result.metrics["test_accuracy"] > 0.1
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()) == 1 + 1
    last_lr = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["optimizer"]["param_groups"][0]["lr"]
    assert last_lr < 0.01 * 0.05  # annealed to (near) zero by the end of the budget


def test_a_negative_time_budget_is_refused():
    from lstmkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config \[train\] max_minutes: expected a non-negative float, got -1.0"):
        load_config(None, ["train.max_minutes=-1"])
