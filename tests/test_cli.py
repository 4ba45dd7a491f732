"""End-to-end runs of the ``lstmkit`` command, in-process, into tmp_path."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main

ROOT = Path(__file__).parent.parent
DIGITS = ROOT / "configs" / "digits.toml"


@pytest.fixture(scope="module")
def trained_run(digits_run, tmp_path_factory):
    """The session's digits run (tests/conftest.py), copied: these tests write into it."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    shutil.copytree(digits_run, out)
    return out


def test_train_writes_a_complete_run_folder(trained_run, capsys):
    out = trained_run
    for name in ["config.toml", "metrics.csv", "metrics.json", "evaluation.txt", "evaluation.json",
                 "confusion_matrix.png", "checkpoints/best.pt", "checkpoints/last.pt",
                 "model/model.safetensors", "model/config.toml", "model/meta.json", "report.html"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ["test_accuracy", "test_precision_macro", "test_recall_macro", "test_f1_macro"]:
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["test_accuracy"] > 0.3  # two epochs of a tiny LSTM are far above chance (0.1)
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 3
    assert "epochs = 2" in (out / "config.toml").read_text()
    assert "hidden_size = 32" in (out / "model" / "config.toml").read_text()


def test_evaluate_reproduces_the_training_metrics(trained_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(trained_run / "model"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert report["recall_macro"] == pytest.approx(metrics["test_recall_macro"])
    assert main(["evaluate", str(trained_run / "model")]) == 0
    assert "confusion matrix" in capsys.readouterr().out


def test_predict_npy_and_stdin(trained_run, capsys, tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images[:4].astype(np.float32)
    np.save(tmp_path / "four.npy", x)
    capsys.readouterr()
    assert main(["predict", str(trained_run / "model"), str(tmp_path / "four.npy"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)
    assert all(r["label"] in [str(d) for d in range(10)] for r in results)

    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(",".join(str(v) for v in row.ravel()) for row in x)))
    assert main(["predict", str(trained_run / "model"), "-", "--json"]) == 0
    from_stdin = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in from_stdin] == [r["label"] for r in results]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "missing.toml"], r"lstmkit: error: config file missing.toml: not found"),
        (["train", str(DIGITS), "--set", "train.lr=fast"], r'config \[train\] lr: expected a positive float, got "fast"'),
        (["train", str(DIGITS), "--set", "train.colour=red"], r"unknown key 'train.colour'"),
        (["train", str(DIGITS), "--set", "data.name=nosuch"], r"nosuch"),
        (["predict", "no/such/model", "x.npy"], r"model folder no/such/model: not found"),
    ],
)
def test_user_errors_are_one_line_with_status_2(argv, message, capsys, tmp_path):
    argv = argv + (["--out", str(tmp_path / "run")] if argv[0] == "train" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "run").exists()  # a failed start leaves no half-written run folder


def test_predict_rejects_wrong_shapes(trained_run, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 8, 5), dtype=np.float32))
    assert main(["predict", str(trained_run / "model"), str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "bad.npy" in err and "8" in err and "Traceback" not in err


def test_out_folder_that_exists_is_refused(trained_run, capsys):
    assert main(["train", str(DIGITS), "--out", str(trained_run)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


def test_predict_an_image_file(trained_run, capsys):
    from lstmkit.data import load_source, read_inputs

    png = ROOT / "examples" / "digit_3.png"  # a test-split 3, scaled to 0..255 and enlarged to 64x64
    x = read_inputs(png, 8, 8, image_shape=(8, 8), pixel_max=16)
    digits = load_source("digits").test
    original = digits.x[digits.y == 3][0]
    np.testing.assert_allclose(x[0], original, atol=16 / 255 + 1e-6)
    capsys.readouterr()
    assert main(["predict", str(trained_run / "model"), str(png), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["input"].endswith("digit_3.png") and abs(sum(result["probabilities"].values()) - 1) < 1e-5


def test_output_into_a_closed_pipe_ends_quietly(trained_run, tmp_path):
    """`lstmkit predict ... | head -1`: the reader leaves early; no BrokenPipeError traceback, status 141."""
    import subprocess
    import sys

    np.save(tmp_path / "many.npy", np.zeros((3000, 8, 8), dtype=np.float32))  # far more than a pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit.cli", "predict", str(trained_run / "model"),
                             str(tmp_path / "many.npy")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert first.strip() and "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_predict_refuses_values_that_overflow_once_standardised(tmp_path, capsys):
    """Issue 17 item 2: 3.4e38 is a float32, but not once standardised: nan probabilities and exit 0 before."""
    import torch

    from lstmkit.config import Config, ModelConfig
    from lstmkit.data import Standardizer
    from lstmkit.artifacts.model_folder import save_model
    from lstmkit.models import InputSpec, build_model

    spec = InputSpec(input_size=3, num_outputs=2, sequence_length=4)
    config = Config(model=ModelConfig(hidden_size=4))
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(0.0, 0.01, size=(8, 4, 3)).astype(np.float32)
    folder = save_model(tmp_path / "model", build_model(config.model, spec), config, spec, ["a", "b"],
                        Standardizer().fit(x))
    (tmp_path / "in.csv").write_text("0,0,0,0,0,0,0,0,0,0,0,3.4e38\n")
    assert main(["predict", str(folder), str(tmp_path / "in.csv")]) == 2
    err = capsys.readouterr().err
    assert "model input once standardised with the training statistics" in err and "NaN/Inf" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_train_with_a_deeply_nested_config_is_one_line(tmp_path, capsys):
    """Issue 17 item 8: RecursionError in task_runs.recipe_task, which peeks at the file before the guarded loader."""
    config = tmp_path / "deep.toml"
    config.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"lstmkit: error: config file {config}: not valid TOML (arrays or tables nested too deeply)"


def test_train_with_a_huge_learning_rate_fails_before_training(tmp_path, capsys):
    assert main(["train", str(DIGITS), "--out", str(tmp_path / "run"), "--set", "train.lr=1e308"]) == 2
    assert "config [train] lr: expected a float <= 1000.0, got 1e+308" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_full_disk_while_saving_the_model_is_one_line(tmp_path, capsys, monkeypatch):
    """Issue 17 item 8: OSError [Errno 28] was a traceback; it names the file it could not write."""
    import errno

    import lstmkit.artifacts.model_folder as model_folder

    def full(state, filename, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(model_folder, "save_file", full)
    status = main(["train", str(DIGITS), "--out", str(tmp_path / "run"), "--set", "train.epochs=1",
                   "--set", "train.progress=false", "--set", "model.hidden_size=8"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"lstmkit: error: cannot write {tmp_path / 'run' / 'model'}/.model.safetensors.tmp-")
    assert line.endswith("(No space left on device)")
    assert not list((tmp_path / "run" / "model").glob(".*.tmp-*"))
