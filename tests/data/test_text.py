"""Text sources: the tokenizer, the CSV/JSONL and CoNLL readers, and the three sources' arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.config import DataConfig
from lstmkit.data import load_source
from lstmkit.data.base import IGNORE_INDEX, ArrayDataset
from lstmkit.data.text import PAD_ID, UNK_ID, Tokenizer, read_conll, read_labelled_texts
from lstmkit.data.transforms import split_train_val
from lstmkit.errors import ConfigError, DataError


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_levels_lowercase_and_unknown_words():
    tok = Tokenizer.fit(["The cat sat.", "the dog sat!"], level="word")
    assert tok.vocab[:2] == ["<pad>", "<unk>"]
    assert tok.vocab[2:] == ["sat", "the", "!", ".", "cat", "dog"]  # by count, then alphabetically
    assert tok.split("The CAT, sat") == ["the", "cat", ",", "sat"]
    assert tok.encode("the bird sat") == [tok.vocab.index("the"), UNK_ID, tok.vocab.index("sat")]
    chars = Tokenizer.fit(["ab a"], level="char", lowercase=False)
    assert chars.vocab[2:] == ["a", " ", "b"] and chars.decode(chars.encode("ba b")) == "ba b"
    assert chars.encode("aZ") == [chars.vocab.index("a"), UNK_ID]


def test_tokenizer_min_freq_max_vocab_and_max_length():
    texts = ["a a a b b c", "a b d"]
    assert Tokenizer.fit(texts, min_freq=2).vocab[2:] == ["a", "b"]
    assert Tokenizer.fit(texts, max_vocab=1).vocab[2:] == ["a"]
    assert len(Tokenizer.fit(texts, max_length=2).encode("a b c d")) == 2


def test_tokenizer_round_trips_through_json():
    tok = Tokenizer.fit(["Hello, world"], level="word", lowercase=False, max_length=7)
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and again.encode("Hello there") == tok.encode("Hello there")
    with pytest.raises(DataError, match=r"'<pad>' and '<unk>' as its first two entries"):
        Tokenizer.from_dict({"level": "word", "vocab": ["a", "b"]})
    with pytest.raises(DataError, match=r"level: expected one of word, char, whitespace, got 'bytes'"):
        Tokenizer.from_dict({"level": "bytes", "vocab": ["<pad>", "<unk>"]})


# ----------------------------------------------------------------------------------------------------------
# Readers


def test_csv_and_jsonl_readers(tmp_path):
    rows = read_labelled_texts(write_csv(tmp_path / "a.csv", [("good film", "pos"), ('"bad, bad"', "neg")]))
    assert [(r.text, r.label, r.line) for r in rows] == [("good film", "pos", 2), ("bad, bad", "neg", 3)]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"body": "fine", "y": 1}\n\n{"body": "poor", "y": 0}\n')
    rows = read_labelled_texts(jsonl, text_column="body", label_column="y")
    assert [(r.text, r.label, r.line) for r in rows] == [("fine", "1", 1), ("poor", "0", 3)]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.csv", "words,label\nhi,x\n",
         r"a.csv: expected a column 'text' \(\[data\] text_column\), got columns \['words', 'label'\]"),
        ("a.csv", "text,label\nhi,x\n   ,y\n", r"a.csv line 3: expected a non-empty text in 'text', got nothing"),
        ("a.csv", "text,label\nhi,\n", r"a.csv line 2: expected a label in 'label'"),
        ("a.jsonl", '{"text": "hi", "label": "x"}\n{"text": "oops", label: 1}\n', r"a.jsonl line 2: not valid JSON"),
        ("a.jsonl", '{"text": "hi", "label": "x"}\n\n{"text": "no label"}\n',
         r"a.jsonl line 3: expected a key 'label' \(\[data\] label_column\), got keys \['text'\]"),
        ("a.jsonl", '{"text": "", "label": "x"}\n', r"a.jsonl line 1: expected a non-empty text"),
        ("a.jsonl", '["hi", "x"]\n', r"a.jsonl line 1: expected a JSON object, got list"),
        ("a.csv", "text,label\n", r"expected at least one labelled text, got none"),
        ("a.txt", "hi\n", r"expected a .csv, .tsv or .jsonl file, got '.txt'"),
    ],
)
def test_malformed_text_files_are_refused_naming_the_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_labelled_texts(tmp_path / name)


def test_conll_reader(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART- -X- O O\n\nAda NNP B-NP B-PER\nsang VBD B-VP O\n\n\nOslo B-LOC\n")
    sentences = read_conll(path)
    assert [(s.tokens, s.labels, s.line) for s in sentences] == [
        (["Ada", "sang"], ["B-PER", "O"], 3), (["Oslo"], ["B-LOC"], 7)]


def test_conll_reader_errors(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("Ada B-PER\nsang O\n\nlonely\n")
    with pytest.raises(DataError, match=r"a.conll line 4: expected a token and a label separated by whitespace, "
                                        r"got one field 'lonely'"):
        read_conll(path)
    path.write_text("\n\n")
    with pytest.raises(DataError, match=r"expected at least one sentence, got none"):
        read_conll(path)
    with pytest.raises(DataError, match=r"no such file"):
        read_conll(tmp_path / "missing.conll")


# ----------------------------------------------------------------------------------------------------------
# Sources


def test_text_classification_vocabulary_comes_from_the_training_split_only(tmp_path):
    train = write_csv(tmp_path / "train.csv", [("a good film", "pos"), ("a bad film", "neg"), ("good good", "pos")])
    test = write_csv(tmp_path / "test.csv", [("a splendid film", "pos")])
    cfg = DataConfig(name="text-classification", path=str(train), test_path=str(test), normalize=False)
    source = load_source("text-classification", config=cfg)
    tok = Tokenizer.from_dict(source.meta["tokenizer"])
    assert "splendid" not in tok.vocab
    assert source.test.x[0, :3, 0].tolist() == [tok.vocab.index("a"), UNK_ID, tok.vocab.index("film")]
    assert source.label_names == ["neg", "pos"] and source.train.y.tolist() == [1, 0, 1]
    assert source.train.lengths.tolist() == [3, 3, 2] and source.train.x[2, 2, 0] == PAD_ID
    assert source.train.x.shape[1:] == source.test.x.shape[1:]
    assert source.model_settings == {"vocab_size": len(tok)}


def test_text_classification_holds_out_a_fixed_test_split(tmp_path):
    path = write_csv(tmp_path / "a.csv", [(f"text number {i}", "ab"[i % 2]) for i in range(20)])
    cfg = DataConfig(name="text-classification", path=str(path), normalize=False, test_fraction=0.25)
    first, second = (load_source("text-classification", config=cfg) for _ in range(2))
    assert len(first.train) == 15 and len(first.test) == 5
    np.testing.assert_array_equal(first.test.x, second.test.x)


def test_text_source_config_errors(tmp_path):
    path = write_csv(tmp_path / "a.csv", [("hi there", "x"), ("bye", "y")])
    with pytest.raises(ConfigError, match=r"\[data\] normalize: expected false for the text source"):
        load_source("text-classification", config=DataConfig(name="text-classification", path=str(path)))
    with pytest.raises(ConfigError, match=r"\[data\] path: the source 'tagging' reads a file"):
        load_source("tagging", config=DataConfig(name="tagging", normalize=False))
    test = write_csv(tmp_path / "b.csv", [("hi", "z")])
    cfg = DataConfig(name="text-classification", path=str(path), test_path=str(test), normalize=False)
    with pytest.raises(DataError, match=r"b.csv line 2: label 'z' does not occur in the training split"):
        load_source("text-classification", config=cfg)


def test_tagging_source_has_one_label_per_token_and_ignores_padding(tmp_path):
    (tmp_path / "train.conll").write_text("Ada B-PER\nsang O\n\nOslo B-LOC\n")
    (tmp_path / "test.conll").write_text("Ada B-PER\nran O\nhome O\n")
    cfg = DataConfig(name="tagging", path="train.conll", test_path="test.conll", normalize=False, lowercase=False)
    source = load_source("tagging", data_dir=tmp_path, config=cfg)
    assert source.label_names == ["B-LOC", "B-PER", "O"]
    assert source.train.y.tolist() == [[1, 2, IGNORE_INDEX], [0, IGNORE_INDEX, IGNORE_INDEX]]
    assert source.test.x[0, :, 0].tolist()[1:] == [UNK_ID, UNK_ID]  # "ran" and "home" are not in training
    assert source.test.lengths.tolist() == [3]


def test_char_lm_windows_predict_the_next_character(tmp_path):
    text = "abcabcabcabcabcabcabcabcabcab"
    (tmp_path / "t.txt").write_text(text)
    cfg = DataConfig(name="char-lm", path=str(tmp_path / "t.txt"), length=5, normalize=False, lowercase=False,
                     test_fraction=0.3)
    source = load_source("char-lm", config=cfg)
    tok = Tokenizer.from_dict(source.meta["tokenizer"])
    train_text = text[: int(len(text) * 0.7)]
    first = source.train
    assert tok.decode(first.x[0, :, 0].astype(int)) == train_text[:5]
    assert tok.decode(first.y[0]) == train_text[1:6]
    last = len(first) - 1
    assert first.lengths[last] == len(train_text) - 1 - 5 * last
    assert (first.y[last, first.lengths[last]:] == IGNORE_INDEX).all()
    assert source.label_names == tok.vocab


def test_array_dataset_takes_one_class_per_step():
    x = np.zeros((4, 3, 1), dtype=np.float32)
    ds = ArrayDataset(x, np.array([[0, 1, IGNORE_INDEX]] * 4), lengths=np.array([2, 2, 2, 2]))
    assert ds.y.shape == (4, 3)
    train, val = split_train_val(ds, 0.25, seed=0)
    assert len(train) == 3 and len(val) == 1
    with pytest.raises(DataError, match=r"expected an array of shape \(N,\), or \(N, 3\) for one class per step, "
                                        r"got \(4, 5\)"):
        ArrayDataset(x, np.zeros((4, 5), dtype=np.int64))


def test_a_deeply_nested_jsonl_line_is_one_clear_error(tmp_path):
    """Found by tests/fuzz/test_fuzz_readers.py: a RecursionError from json.loads."""
    path = tmp_path / "texts.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n' + "[" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"texts.jsonl line 2: not valid JSON \(arrays or objects nested too deeply\)"):
        read_labelled_texts(path)
