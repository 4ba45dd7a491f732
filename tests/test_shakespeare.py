"""configs/shakespeare.toml on the real tiny-shakespeare text, shrunk to a few CPU seconds: it learns far more
than character frequencies, scores the last 10% of the text, and `lstmkit generate` continues a prompt."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from lstmkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT.parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
pytestmark = [pytest.mark.skipif(not TEXT.is_file(), reason=f"needs the shared tiny-shakespeare text at {TEXT}"),
              pytest.mark.usefixtures("one_thread")]


def unigram_entropy(text: str) -> float:
    """Nats per character of the best model that ignores context: the characters' own frequencies."""
    counts = Counter(text)
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values())


def test_the_recipe_learns_context_in_seconds_and_generates(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", str(ROOT / "configs" / "shakespeare.toml"), "--out", str(out), "--set", f"data.path={TEXT}",
                   "--set", "model.hidden_size=64", "--set", "train.max_minutes=0.06", "--set", "train.budget_clock=cpu",
                   "--set", "train.report=false", "--set", "train.tensorboard=false", "--set", "train.num_threads=1"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    text = TEXT.read_text(encoding="utf-8")
    held_out = text[int(len(text) * 0.9):]
    # chance is log(67) = 4.2 nats; character frequencies alone give ~3.3; a model of context is far below both
    assert metrics["test_loss"] < unigram_entropy(held_out) - 0.6, (metrics, unigram_entropy(held_out))
    assert metrics["epochs_run"] < 4  # the CPU budget (3.6 s) ended training before the recipe's 4 epochs
    capsys.readouterr()
    assert main(["generate", str(out / "model"), "--prompt", "ROMEO:", "--length", "80", "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("ROMEO:") and len(sample.rstrip("\n")) == len("ROMEO:") + 80
    assert sum(sample.count(c) for c in " \n") >= 8  # words and lines, not one run of letters
