"""End-to-end seq2seq and frames runs through the ``lstmkit`` command, in-process, into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.errors import ConfigError

CONFIGS = Path(__file__).parent.parent.parent / "configs"
TINY_S2S = ["--set", "train.epochs=1", "--set", "data.samples=200", "--set", "data.val_samples=20",
            "--set", "data.test_samples=20", "--set", "model.hidden_size=16", "--set", "model.embedding_size=8"]


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "reverse"
    assert main(["train", str(CONFIGS / "reverse.toml"), "--out", str(out), *TINY_S2S]) == 0
    return out


def test_seq2seq_train_writes_a_run_folder(reverse_run):
    for name in ["config.toml", "metrics.csv", "metrics.json", "evaluation.txt", "attention.png",
                 "checkpoints/best.pt", "model/model.safetensors", "model/config.toml", "model/meta.json",
                 "model/vocab.json"]:
        assert (reverse_run / name).is_file(), name
    metrics = json.loads((reverse_run / "metrics.json").read_text())
    assert 0.0 <= metrics["test_exact_match"] <= metrics["test_token_accuracy"] <= 1.0
    vocab = json.loads((reverse_run / "model" / "vocab.json").read_text())
    assert vocab["source"]["tokens"] == "char" and vocab["source"]["itos"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (reverse_run / "metrics.csv").read_text().startswith("epoch,lr,train_loss")


def test_translate_greedy_beam_and_attention(reverse_run, capsys):
    model = str(reverse_run / "model")
    capsys.readouterr()
    assert main(["translate", model, "12345"]) == 0
    greedy = capsys.readouterr().out.strip()
    assert set(greedy) <= set("0123456789<unk>")
    assert main(["translate", model, "12345", "--beam", "1"]) == 0
    assert capsys.readouterr().out.strip() == greedy
    assert main(["translate", model, "12345", "987", "--beam", "3", "--attention"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12345\t") and "987\t" in out
    assert main(["translate", model, "1", "--beam", "0"]) == 2
    capsys.readouterr()
    assert main(["translate", str(reverse_run), "12345"]) == 0  # the run folder stands for its model/
    assert capsys.readouterr().out.strip() == greedy
    (reverse_run / "model" / "vocab.json").rename(reverse_run / "vocab.moved")
    try:
        assert main(["translate", model, "1"]) == 2
        assert "missing vocab.json" in capsys.readouterr().err
    finally:
        (reverse_run / "vocab.moved").rename(reverse_run / "model" / "vocab.json")


def test_seq2seq_trains_on_a_user_tsv(tmp_path, capsys):
    rows = [f"{w}\t{w[::-1]}" for w in ("cat", "dog", "bird", "fish", "cow", "hen", "owl", "ant", "bee", "elk")]
    (tmp_path / "pairs.tsv").write_text("\n".join(rows * 3) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "reverse.toml"), "--out", str(out), *TINY_S2S, "--set", "data.name=tsv",
                 "--set", f"data.path={json.dumps(str(tmp_path / 'pairs.tsv'))}"]) == 0
    assert json.loads((out / "metrics.json").read_text())["test_pairs"] == 3
    (tmp_path / "bad.tsv").write_text("no tab\n", encoding="utf-8")
    assert main(["train", str(CONFIGS / "reverse.toml"), "--out", str(tmp_path / "bad"), "--set", "data.name=tsv",
                 "--set", f"data.path={json.dumps(str(tmp_path / 'bad.tsv'))}"]) == 2
    assert "line 1: expected source<TAB>target" in capsys.readouterr().err


def test_seq2seq_config_errors(tmp_path, capsys):
    assert main(["train", str(CONFIGS / "dates.toml"), "--out", str(tmp_path / "x"),
                 "--set", "model.attention=cosine"]) == 2
    assert 'config [model] attention: expected one of "additive", "dot", "general"' in capsys.readouterr().err
    from lstmkit.tasks.seq2seq import load_config

    with pytest.raises(ConfigError, match='path: expected a TSV file for name = "tsv"'):
        load_config(CONFIGS / "dates.toml", ["data.name=tsv"])


@pytest.mark.parametrize("recipe", ["dates.toml", "addition.toml", "reverse.toml"])
def test_shipped_seq2seq_recipes_load(recipe):
    from lstmkit.tasks.seq2seq import load_config

    assert load_config(CONFIGS / recipe).model.task == "seq2seq"


def test_frames_train_reports_the_baseline_beside_the_model(tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["train", str(CONFIGS / "moving_digits.toml"), "--out", str(out), "--set", "train.epochs=1",
                 "--set", "data.samples=8", "--set", "data.val_samples=4", "--set", "data.test_samples=4",
                 "--set", "data.frame_size=32", "--set", "data.digit_size=12", "--set", "data.input_frames=3",
                 "--set", "data.output_frames=2", "--set", "model.hidden_channels=[4]",
                 "--set", "train.batch_size=4"]) == 0
    printed = capsys.readouterr().out
    assert "copy-last-frame baseline" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_mse", "baseline_mse", "test_ssim", "baseline_ssim", "blank_mse", "blank_ssim"):
        assert np.isfinite(metrics[key]), key
    assert len(metrics["test_mse_by_step"]) == len(metrics["baseline_ssim_by_step"]) == 2  # output_frames
    assert "by predicted frame" in (out / "evaluation.txt").read_text()
    for name in ("frames.png", "evaluation.txt", "metrics.csv", "model/model.safetensors", "checkpoints/best.pt"):
        assert (out / name).is_file(), name
