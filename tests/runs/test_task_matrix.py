"""Every task through the one loop: kill and resume bit-identical, data parallelism, the model folder's
manifest, and ``lstmkit.load``. Tiny settings of each shipped recipe, run as ``lstmkit train`` runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import numpy as np

from lstmkit.cli import main

ROOT = Path(__file__).parent.parent.parent
CONFIGS = ROOT / "configs"
TEXT = ROOT / "examples" / "text"
COMMON = ["train.progress=false", "train.num_threads=1", "train.epochs=2", "train.checkpoint_every=2",
          "train.tensorboard=false"]

# recipe, tiny overrides (4 batches an epoch), what the loaded model answers
TASKS = {
    "classifier": ("digits.toml", ["model.hidden_size=8", "train.batch_size=256", "model.zoneout=0.1",
                                   "model.head_dropout=0.2", "train.schedule=cosine"]),
    "seq2seq": ("reverse.toml", ["data.samples=128", "data.val_samples=16", "data.test_samples=16",
                                 "model.hidden_size=8", "model.embedding_size=4", "train.batch_size=32",
                                 "model.teacher_forcing=0.5", "model.dropout=0.1"]),
    "regressor": ("adding.toml", ["data.length=20", "data.samples=256", "model.hidden_size=8",
                                  "model.chrono_init=0", "train.batch_size=64", "model.zoneout=0.1"]),
    # AutoETS and AutoARIMA (tests/test_forecasting.py) would add ~10 s to every run and evaluate here
    "forecaster": ("airline.toml", ["model.hidden_size=8", "train.batch_size=16", "model.head_dropout=0.2",
                                    "train.statistical=false"]),
    "text-classifier": ("text_classification.toml", [f"data.path={json.dumps(str(TEXT / 'reviews.csv'))}",
                                                      "model.hidden_size=8", "model.embedding_size=4",
                                                      "train.batch_size=128"]),
    "tagger": ("tagging.toml", [f"data.path={json.dumps(str(TEXT / 'entities.conll'))}", "model.hidden_size=8",
                                "model.embedding_size=4", "train.batch_size=64"]),
    "char-lm": ("char_lm.toml", [f"data.path={json.dumps(str(TEXT / 'corpus.txt'))}", "model.hidden_size=8",
                                 "model.embedding_size=4", "train.batch_size=64"]),
    "next-symbols": ("embedded_reber.toml", ["data.samples=64", "model.hidden_size=8", "train.batch_size=16"]),
    "frames": ("moving_digits.toml", ["data.samples=16", "data.val_samples=4", "data.test_samples=4",
                                      "data.frame_size=16", "data.digit_size=8", "data.input_frames=3",
                                      "data.output_frames=2", "data.speed=1.0", "model.hidden_channels=[2]",
                                      "model.warp_kernel=3", "train.batch_size=4"]),
}

# Trains like `lstmkit train`, and kills itself with SIGKILL in epoch 2, one batch after a checkpoint:
# no exception handler, atexit or flush runs.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import lstmkit.runs.train as train
    from lstmkit.training.callbacks import Callback
    from lstmkit.tasks import load_recipe

    class Kill(Callback):
        def on_batch_end(self, trainer, step, logs):
            if trainer.position.epoch == 2 and step == 3:
                os.kill(os.getpid(), signal.SIGKILL)

    make = train.run_callbacks
    train.run_callbacks = lambda *a: make(*a) + [Kill()]
    task, config = load_recipe(sys.argv[1], sys.argv[3:])
    train.run_task(config, Path(sys.argv[2]), task=task)
""")


def _args(name: str, extra: list[str] = ()) -> tuple[str, list[str]]:
    recipe, overrides = TASKS[name]
    return str(CONFIGS / recipe), [*COMMON, "train.report=false", *overrides, *extra]


def _train(recipe: str, overrides: list[str], out: Path, *flags: str) -> None:
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["train", recipe, "--out", str(out), *sets, *flags]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted run of each task (module-scoped: the other tests read it)."""
    root = tmp_path_factory.mktemp("matrix")
    done = {}
    for name in TASKS:
        recipe, overrides = _args(name)
        _train(recipe, overrides, root / name)
        done[name] = root / name
    return done


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_sigkill_then_resume_is_bit_identical(name, runs, tmp_path):
    recipe, overrides = _args(name)
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, recipe, str(killed), *overrides],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / "model").exists() and (killed / "checkpoints" / "last.pt").is_file()
    assert main(["train", "--resume", str(killed)]) == 0
    reference = runs[name]
    assert (killed / "model" / "model.safetensors").read_bytes() == \
        (reference / "model" / "model.safetensors").read_bytes()
    strip = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]  # noqa: E731
    assert strip(killed / "metrics.csv") == strip(reference / "metrics.csv")  # all but the seconds column


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_two_processes_train_every_task(name, tmp_path):
    recipe, overrides = _args(name, ["train.epochs=1"])
    _train(recipe, overrides, tmp_path / "ddp", "--nproc", "2")
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1
    assert (tmp_path / "ddp" / "model" / "manifest.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_every_model_folder_has_a_manifest_and_refuses_tampering(name, runs, tmp_path):
    import shutil

    import lstmkit
    from lstmkit.errors import ModelFolderError

    folder = tmp_path / "model"
    shutil.copytree(runs[name] / "model", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"model.safetensors", "config.toml", "meta.json"} <= set(manifest["files"])
    lstmkit.load(folder)  # loads as saved
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="model.safetensors does not match manifest.json"):
        lstmkit.load(folder)


@pytest.mark.slow
def test_load_gives_each_task_its_verbs(runs):
    import numpy as np

    import lstmkit

    classifier = lstmkit.load(runs["classifier"])  # a run folder stands for its model/
    assert classifier.predict(np.zeros((2, 8, 8), np.float32)).shape == (2,)
    translator = lstmkit.load(runs["seq2seq"] / "model")
    assert isinstance(translator.translate("123").text, str)
    assert translator.predict(["123", "45"]) == [translator.translate("123").text, translator.translate("45").text]
    forecaster = lstmkit.load(runs["forecaster"])
    result = forecaster.forecast(3)
    assert result.forecast.shape == (3, 1) and set(result.baselines) == {"naive", "seasonal_naive"}
    assert forecaster.forecast(backtest=True).metrics["lstm"]["mase"] > 0
    assert "generate" in dir(lstmkit.load(runs["char-lm"]))
    frames = lstmkit.load(runs["frames"])
    assert frames.predict(np.zeros((1, 3, 1, 16, 16), np.float32)).shape == (1, 2, 1, 16, 16)
    with pytest.raises(lstmkit.errors.DataError, match=r"frames input: expected shape \(N, L, 1, 16, 16\)"):
        frames.predict(np.zeros((1, 3, 16, 16), np.float32))


EVALUATED = {  # the metrics.json key of each task and where lstmkit evaluate --json has the same number
    "classifier": ("test_accuracy", ["accuracy"]),
    "regressor": ("test_mae", ["mae"]),
    "forecaster": ("test_mase", ["metrics", "lstm", "mase"]),
    "text-classifier": ("test_accuracy", ["accuracy"]),
    "tagger": ("test_token_f1", ["token_f1"]),
    "char-lm": ("test_bits_per_token", ["bits_per_token"]),
    "next-symbols": ("test_step_accuracy", ["step_accuracy"]),
    "seq2seq": ("test_exact_match", ["exact_match"]),
    "frames": ("test_mse", ["model", "mse"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_evaluate_reproduces_each_tasks_test_metrics(name, runs, capsys):
    key, path = EVALUATED[name]
    capsys.readouterr()
    assert main(["evaluate", str(runs[name]), "--json"]) == 0
    value = json.loads(capsys.readouterr().out)
    for part in path:
        value = value[part]
    assert value == pytest.approx(json.loads((runs[name] / "metrics.json").read_text())[key], rel=1e-5)
    assert main(["evaluate", str(runs[name] / "model")]) == 0
    assert capsys.readouterr().out.strip()


def _verb(name: str, run: Path, tmp: Path) -> list[str]:
    """The command line of each task's own verb on a user's input."""
    import numpy as np

    if name in ("classifier",):
        return ["predict", str(run), str(ROOT / "examples" / "digits_sample.csv")]
    if name == "regressor":
        np.save(tmp / "x.npy", np.random.default_rng(0).random((3, 22, 2)).astype(np.float32))
        return ["predict", str(run), str(tmp / "x.npy"), "--json"]
    if name == "next-symbols":
        x = np.zeros((1, 5, 7), np.float32)
        x[0, np.arange(5), [0, 1, 3, 2, 6]] = 1
        np.save(tmp / "x.npy", x)
        return ["predict", str(run), str(tmp / "x.npy"), "--json"]
    if name == "forecaster":
        return ["forecast", str(run), "--horizon", "3", "--out", str(tmp / "f.csv"), "--no-statistical"]
    if name == "text-classifier":
        return ["predict", str(run), "--text", "a fine film", "--json"]
    if name == "tagger":
        return ["predict", str(run), "--text", "Grace visited Oslo .", "--json"]
    if name == "char-lm":
        return ["generate", str(run), "--prompt", "The", "--length", "12"]
    if name == "seq2seq":
        return ["translate", str(run), "12345"]
    if name == "frames":
        np.save(tmp / "frames.npy", np.random.default_rng(0).random((2, 3, 1, 16, 16)).astype(np.float32))
        return ["predict", str(run), str(tmp / "frames.npy"), "--json"]
    raise KeyError(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_each_tasks_verb_answers_on_user_input(name, runs, tmp_path, capsys):
    capsys.readouterr()
    assert main(_verb(name, runs[name], tmp_path)) == 0
    out = capsys.readouterr().out
    assert out.strip()
    if name in ("regressor", "next-symbols"):
        results = json.loads(out)
        assert len(results) == (3 if name == "regressor" else 1)
        shape = np.asarray(results[0]["values"]).shape
        assert shape == (() if name == "regressor" else (5, 7))
    if name == "frames":
        results = json.loads(out)
        assert len(results) == 2 and np.asarray(results[0]["frames"]).shape == (2, 1, 16, 16)
    if name == "char-lm":
        assert out.startswith("The") and len(out.rstrip("\n")) >= 3 + 12 - 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_writes_its_report_without_a_warning(name, runs, caplog):
    import logging

    from lstmkit.runs.folder import RunFolder
    from lstmkit.runs.train import write_report

    caplog.set_level(logging.WARNING)
    write_report(RunFolder(runs[name]))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert (runs[name] / "report.html").stat().st_size > 1000


def test_report_refuses_a_model_folder_naming_the_run(runs, capsys):
    assert main(["report", str(runs["classifier"] / "model")]) == 2
    err = capsys.readouterr().err
    assert "expected a run folder, got a model folder; give the run folder that holds it" in err
    assert str(runs["classifier"]) in err
    assert not (runs["classifier"] / "model" / "report.html").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in TASKS if n != "forecaster"] + ["forecaster"])
def test_tune_searches_every_task(name, tmp_path, capsys):
    import tomllib

    recipe, overrides = _args(name, ["train.epochs=1"])
    space = tmp_path / "space.toml"
    space.write_text("[train.lr]\nlow = 1e-3\nhigh = 1e-2\nlog = true\n")
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["tune", recipe, "--space", str(space), "--trials", "2", "--out", str(tmp_path / "t"), *sets]) == 0
    assert "2 trials" in capsys.readouterr().out
    best = tomllib.loads((tmp_path / "t" / "best.toml").read_text())
    assert best["model"]["task"] == name and 1e-3 <= best["train"]["lr"] <= 1e-2
    rows = (tmp_path / "t" / "trials.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",complete," in row for row in rows[1:])


@pytest.mark.slow
@pytest.mark.parametrize("name, hint", [("seq2seq", "use lstmkit translate")])
def test_predict_points_other_tasks_to_their_verb(name, hint, runs, capsys):
    assert main(["predict", str(runs[name]), "x.npy"]) == 2
    err = capsys.readouterr().err
    assert f"a [model] task = '{name}' model does not read input files; " in err and hint in err


SCHEMAS = {  # task: (input names, output name, output shape)
    "classifier": (["sequences"], "probabilities", ["N", 10]),
    "regressor": (["sequences"], "values", ["N", 1]),
    "forecaster": (["history"], "forecast", ["N", 12, 1]),
    "text-classifier": (["texts"], "probabilities", ["N", 2]),
    "tagger": (["texts"], "probabilities", ["N", "L", None]),
    "char-lm": (["texts"], "probabilities", ["N", "L", None]),
    "next-symbols": (["sequences", "lengths"], "values", ["N", "L", 7]),
    "seq2seq": (["texts"], "texts", ["N"]),
    "frames": (["frames"], "frames", ["N", 2, 1, 16, 16]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_declares_its_inputs_and_outputs(name, runs):
    from lstmkit.tasks import trained_schema

    schema = trained_schema(runs[name]).to_dict()
    inputs, output, shape = SCHEMAS[name]
    assert [port["name"] for port in schema["inputs"]] == inputs
    first = schema["outputs"][0]
    assert first["name"] == output
    assert [d if want is not None else None for d, want in zip(first["shape"], shape)] == shape
    if name == "classifier":
        assert schema["labels"] == [str(i) for i in range(10)] and schema["inputs"][0]["shape"] == ["N", 8, 8]


@pytest.mark.slow
def test_frames_predict_names_what_it_expected(runs, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 1, 8, 8), np.float32))
    assert main(["predict", str(runs["frames"]), str(tmp_path / "bad.npy")]) == 2
    assert "frames input: expected shape (N, L, 1, 16, 16), got (1, 3, 1, 8, 8)" in capsys.readouterr().err
    np.save(tmp_path / "one.npy", np.zeros((3, 16, 16), np.float32))  # one sequence of 3 frames
    assert main(["predict", str(runs["frames"]), str(tmp_path / "one.npy")]) == 0
    assert capsys.readouterr().out.strip().endswith("one.npy[0]\t2 predicted frames (--json prints their pixels)")
    assert main(["predict", str(runs["frames"]), "--text", "hello"]) == 2
    assert "expected .npy files of input frames" in capsys.readouterr().err


SERVED = ["regressor", "forecaster", "text-classifier", "tagger", "char-lm", "next-symbols"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SERVED)
def test_each_recipe_exports_serves_and_answers_as_load(name, runs, tmp_path):
    """train -> export -> serve (a real server on 127.0.0.1, both backends) -> request: the answer equals the
    loaded model's verb within 1e-4."""
    import httpx

    import lstmkit
    from lstmkit.export import export_onnx
    from lstmkit.serve import ServeOptions, create_app, load_backend

    sys.path.insert(0, str(ROOT / "tests" / "serve"))
    from serve_helpers import LiveServer

    folder = runs[name] / "model"
    model = lstmkit.load(folder)
    exported = export_onnx(folder, tmp_path / f"{name}.onnx")
    texts = ["Grace Hopper moved to Oslo .", "a fine film"]
    for served in (folder, exported.path):
        backend = load_backend(served)
        with LiveServer(create_app(backend, ServeOptions())) as live, \
                httpx.Client(base_url=live.url, timeout=60) as client:
            if name == "forecaster":
                expected = model.forecast()
                answer = client.post("/v1/forecast", json={"inputs": [expected.history.tolist()]})
                assert answer.status_code == 200, answer.text
                np.testing.assert_allclose(answer.json()["forecasts"][0], expected.forecast, atol=1e-4)
            elif name == "char-lm":
                body = {"prompt": "The ", "length": 40, "temperature": 0.7, "seed": 1}
                answer = client.post("/v1/generate", json=body)
                assert answer.status_code == 200, answer.text
                assert answer.json()["text"] == model.generate("The ", length=40, temperature=0.7, seed=1)
            elif name == "regressor":  # the adding problem: steps of (value, marker)
                shape = (3, model.spec.sequence_length, model.spec.input_size)
                x = np.random.default_rng(0).uniform(0, 1, size=shape).astype(np.float32)
                answer = client.post("/v1/predict", json={"inputs": x.tolist()})
                assert answer.status_code == 200, answer.text
                got = [p["values"] for p in answer.json()["predictions"]]
                np.testing.assert_allclose(np.asarray(got).reshape(3), model.predict(x).reshape(3), atol=1e-4)
            elif name == "next-symbols":
                x = np.eye(7, dtype=np.float32)[[0, 1, 3, 2, 5, 6]]
                answer = client.post("/v1/predict", json={"inputs": [x.tolist()]})
                assert answer.status_code == 200, answer.text
                np.testing.assert_allclose(answer.json()["predictions"][0]["values"], model.predict(x[None])[0],
                                           atol=1e-4)
            else:
                answer = client.post("/v1/predict", json={"texts": texts})
                assert answer.status_code == 200, answer.text
                for got, want in zip(answer.json()["predictions"], model.predict(texts)):
                    if name == "tagger":
                        assert (got["tokens"], got["labels"]) == (want["tokens"], want["labels"])
                    else:
                        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-4)
