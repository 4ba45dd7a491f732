"""A classifier trained on variable-length data (the ``ucr`` source's JapaneseVowels) predicts and is
inspected from the CLI on sequences of any length, and padding never changes an answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main

pytest.importorskip("aeon")
CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture(scope="module")
def vowels_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vowels") / "run"
    assert main(["train", str(CONFIGS / "japanese_vowels.toml"), "--out", str(out), "--set", "train.epochs=1",
                 "--set", "model.hidden_size=8", "--set", "train.progress=false", "--set", "train.report=false",
                 "--set", "train.num_threads=1"]) == 0
    assert json.loads((out / "model" / "meta.json").read_text())["sequence_length"] is None
    return out


@pytest.mark.slow
def test_ragged_rows_predict_as_each_sequence_alone(vowels_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(9, 12)), rng.normal(size=(15, 12))
    (tmp_path / "rows.csv").write_text("\n".join(",".join(f"{v:.6f}" for v in s.ravel()) for s in (a, b)) + "\n")
    np.save(tmp_path / "a.npy", np.round(a, 6).astype(np.float32))
    np.save(tmp_path / "b.npy", np.round(b, 6).astype(np.float32)[None])
    capsys.readouterr()
    assert main(["predict", str(vowels_run), str(tmp_path / "rows.csv"), "--json"]) == 0
    together = [r["probabilities"] for r in json.loads(capsys.readouterr().out)]
    alone = []
    for name in ("a.npy", "b.npy"):
        assert main(["predict", str(vowels_run / "model"), str(tmp_path / name), "--json"]) == 0
        alone += [r["probabilities"] for r in json.loads(capsys.readouterr().out)]
    assert len(together) == 2
    for ours, theirs in zip(together, alone):
        assert ours == pytest.approx(theirs, abs=1e-6)  # the shorter row's padding changed nothing


@pytest.mark.slow
def test_variable_length_inputs_errors_and_inspect(vowels_run, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text(",".join(["0.5"] * 13) + "\n")
    assert main(["predict", str(vowels_run), str(tmp_path / "bad.csv")]) == 2
    assert "row 1: expected a multiple of 12 numbers (the 12 features of each step), got 13" in capsys.readouterr().err
    np.save(tmp_path / "one.npy", np.zeros((7, 12), np.float32))
    assert main(["inspect", str(vowels_run), str(tmp_path / "one.npy"), "--out", str(tmp_path / "view")]) == 0
    assert (tmp_path / "view" / "inspect.html").stat().st_size > 1000
    (tmp_path / "ragged.csv").write_text(",".join(["0.1"] * 24) + "\n" + ",".join(["0.1"] * 36) + "\n")
    assert main(["inspect", str(vowels_run), str(tmp_path / "ragged.csv")]) == 2
    assert "expected sequences of one length, got lengths [2, 3]" in capsys.readouterr().err
