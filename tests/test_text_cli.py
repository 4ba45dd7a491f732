"""End to end through the ``lstmkit`` command on small text files made here: the three text recipes train
into tmp_path, then ``predict`` classifies and tags raw text and ``generate`` samples from the char LM."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.config import load_config
from lstmkit.data import load_source
from lstmkit.data.text import UNK_ID, Tokenizer
from lstmkit.artifacts.model_folder import load_model
from lstmkit.tasks.text import TextModel

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"
TINY = ["--set", "train.progress=false", "--set", "train.tensorboard=false", "--set", "model.hidden_size=8",
        "--set", "model.embedding_size=8"]


def train(recipe: str, data: Path, out: Path, *extra: str) -> Path:
    argv = ["train", str(CONFIGS / recipe), "--out", str(out), "--set", f"data.path={json.dumps(str(data))}",
            *TINY, *extra]
    assert main(argv) == 0
    return out / "model"


@pytest.fixture
def classifier_run(text_classifier_model) -> Path:
    """The text classifier trained once per session on ``reviews`` (tests/conftest.py)."""
    return text_classifier_model


@pytest.mark.slow
def test_text_classification_trains_and_predicts_raw_text(classifier_run, capsys, tmp_path):
    metrics = json.loads((classifier_run.parent / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.8  # one word decides; eight epochs learn it
    capsys.readouterr()
    assert main(["predict", str(classifier_run), "--text", "The film was GREAT", "--text", "the film was dull",
                 "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results] == ["high", "low"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)
    texts = tmp_path / "texts.txt"
    texts.write_text("the film was good\n\nthe film was poor\n")
    assert main(["predict", str(classifier_run), str(texts)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "\thigh\t" in lines[0] and "\tlow\t" in lines[1]


@pytest.mark.slow
def test_vocabulary_round_trips_through_the_model_folder(classifier_run, reviews):
    cfg = load_config(classifier_run / "config.toml")
    source = load_source(cfg.data.name, config=cfg.data)
    saved = TextModel.load(classifier_run).tokenizer
    assert saved == Tokenizer.from_dict(source.meta["tokenizer"])
    assert saved.encode("the film was splendid")[-1] == UNK_ID
    assert cfg.model.vocab_size == len(saved)
    loaded = load_model(classifier_run)
    assert loaded.module.embedding.vocab_size == len(saved)


@pytest.mark.slow
def test_predict_text_errors(classifier_run, capsys):
    assert main(["predict", str(classifier_run), "--text", " ,;"]) == 0  # punctuation is a token
    assert main(["predict", str(classifier_run), "--text", "   "]) == 2
    assert "expected at least one word token" in capsys.readouterr().err
    assert main(["generate", str(classifier_run), "--prompt", "the"]) == 2
    assert "generate: expected a char-lm model, got a text-classifier model" in capsys.readouterr().err


@pytest.mark.slow
def test_tagging_trains_and_tags_raw_text(tmp_path, capsys):
    rng = random.Random(0)
    names, places = ["Ada", "Alan", "Grace", "Kurt"], ["Paris", "Oslo", "Lima", "Kyoto"]
    sentences = []
    for _ in range(60):
        name, place = rng.choice(names), rng.choice(places)
        form = rng.randrange(2)
        tokens = [(name, "B-PER"), ("visited", "O"), (place, "B-LOC"), (".", "O")] if form else \
            [("In", "O"), (place, "B-LOC"), (name, "B-PER"), ("sang", "O"), (".", "O")]
        sentences.append("".join(f"{t} {label}\n" for t, label in tokens))
    path = tmp_path / "tags.conll"
    path.write_text("\n".join(sentences))
    model = train("tagging.toml", path, tmp_path / "run", "--set", "train.epochs=10", "--set", "train.lr=0.03",
                  "--set", "model.head_dropout=0")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_token_f1"] >= 0.8 and metrics["test_accuracy"] >= 0.8
    report = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert report["tokens"] == sum(sum(row) for row in report["confusion_matrix"])
    capsys.readouterr()
    assert main(["predict", str(model), "--text", "Grace visited Oslo .", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["tokens"] == ["Grace", "visited", "Oslo", "."]
    assert result["labels"] == ["B-PER", "O", "B-LOC", "O"]
    assert main(["evaluate", str(model), "--json"]) == 0  # a tagger gets its own metrics
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["token_f1"] == pytest.approx(metrics["test_token_f1"])
    assert main(["evaluate", str(model), "--plot", str(tmp_path / "cm.png")]) == 2
    assert "only a classifier has a confusion matrix to plot" in capsys.readouterr().err


def test_evaluate_reads_the_text_file_the_model_was_trained_on(classifier_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(classifier_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads((classifier_run.parent / "metrics.json").read_text())
    assert report["data"] == "text-classification" and report["accuracy"] == pytest.approx(metrics["test_accuracy"])


@pytest.mark.slow
def test_char_lm_trains_and_generates_deterministically(tmp_path, capsys):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat on the mat. " * 60)
    model = train("char_lm.toml", path, tmp_path / "run", "--set", "data.length=24", "--set", "train.epochs=3",
                  "--set", "train.lr=0.03")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_perplexity"] < 8  # the vocabulary has 12 characters; uniform would be 12
    assert metrics["test_bits_per_token"] == pytest.approx(metrics["test_loss"] / 0.6931471805599453)

    def generate(*extra: str) -> str:
        capsys.readouterr()
        assert main(["generate", str(model), "--prompt", "the c", "--length", "40", *extra]) == 0
        return capsys.readouterr().out.rstrip("\n")

    first = generate("--temperature", "1.5", "--seed", "3")
    assert first.startswith("the c") and len(first) == 45
    assert generate("--temperature", "1.5", "--seed", "3") == first
    others = {generate("--temperature", "1.5", "--seed", str(seed)) for seed in range(4, 8)}
    assert len(others | {first}) > 1  # another seed, another sample
    assert generate("--temperature", "0", "--seed", "1") == generate("--temperature", "0", "--seed", "2")
    assert set(first[5:]) <= set("the cat sat on the mat. ")


def test_generate_and_predict_errors(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nope"), "--prompt", "x"]) == 2
    assert "model folder" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["text_classification.toml", "tagging.toml", "char_lm.toml"])
def test_recipes_read_their_shipped_example_files(recipe):
    cfg = load_config(CONFIGS / recipe)
    cfg.data.path = str(ROOT / cfg.data.path)
    source = load_source(cfg.data.name, config=cfg.data)
    assert len(source.train) >= 100 and len(source.test) >= 10
    assert source.model_settings["vocab_size"] == len(source.meta["tokenizer"]["vocab"])
