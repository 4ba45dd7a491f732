"""The template task (``lstmkit.tasks.template``): one module is all a new task needs to get the loop,
resume, the run folder with its manifest, ``lstmkit.load``, ``evaluate`` and its schema."""

from __future__ import annotations

import json

import pytest

import lstmkit
import lstmkit.tasks.template  # noqa: F401 - registers "recall"
from lstmkit.errors import DataError
from lstmkit.runs.train import run_task
from lstmkit.tasks import evaluate_trained, task_named, trained_schema


@pytest.mark.slow
def test_a_task_in_one_module_gets_the_whole_workflow(tmp_path):
    task = task_named("recall")
    config = task.load_config(None, ["data.samples=512", "data.length=6", "train.epochs=12", "train.lr=0.02",
                                     "train.progress=false", "train.num_threads=1", "train.report=false"])
    result = run_task(config, tmp_path / "run")
    assert result.metrics["test_accuracy"] >= 0.9  # the first of 6 bits is remembered, not guessed
    assert json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())["files"]
    model = lstmkit.load(tmp_path / "run")
    assert model.predict([[1, 0, 0, 1, 0, 0], [0, 1, 1, 0, 1, 1]]) == [1, 0]
    with pytest.raises(DataError, match="expected a non-empty string of 0s and 1s"):
        model.predict([[2]])
    assert evaluate_trained(tmp_path / "run").report["accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert [p.name for p in trained_schema(tmp_path / "run").outputs] == ["recall"]
