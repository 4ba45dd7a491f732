"""The shipped recipes, run as a user runs them (slow: full or shortened trainings)."""

import json
from pathlib import Path

import pytest

from lstmkit.cli import main

CONFIGS = Path(__file__).parent.parent / "configs"
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
def test_digits_recipe_reaches_the_acceptance_accuracy(tmp_path):
    """The README's main job: the full digits recipe reaches test accuracy >= 0.95."""
    out = tmp_path / "digits"
    assert main(["train", str(CONFIGS / "digits.toml"), "--out", str(out), "--set", "train.progress=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95, metrics
    assert metrics["test_recall_macro"] >= 0.95, metrics


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_DEBIAN.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_fashion_mnist_recipe_learns_in_one_epoch(tmp_path):
    """One epoch of the Fashion-MNIST recipe on the real 70k images (the full recipe reaches >= 0.88)."""
    out = tmp_path / "fashion"
    status = main(["train", str(CONFIGS / "fashion_mnist.toml"), "--out", str(out), "--set", "train.epochs=1",
                   "--set", "train.progress=false", "--set", "data.download=false"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.78, metrics
    assert len(json.loads((out / "model" / "meta.json").read_text())["label_names"]) == 10


@pytest.mark.slow
def test_airline_recipe_beats_the_seasonal_naive_forecast(tmp_path):
    """The forecasting acceptance: the airline recipe, as shipped, has a lower test MASE than seasonal naive."""
    out = tmp_path / "airline"
    assert main(["train", str(CONFIGS / "airline.toml"), "--out", str(out), "--set", "train.progress=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_mase"] < metrics["test_seasonal_naive_mase"], metrics
    assert metrics["test_mase"] < metrics["test_naive_mase"], metrics
