"""Text pairs: generated tasks under a seed, the date formats, the TSV reader and the vocabulary."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from lstmkit.data.pairs import (DATE_FORMATS, addition, dates, format_date, parse_date, read_pairs_tsv,
                                reverse_digits)
from lstmkit.data.tokenizer import EOS, UNK, Vocabulary
from lstmkit.errors import DataError


@pytest.mark.parametrize("generate", [dates, addition, reverse_digits])
def test_generators_repeat_under_a_seed(generate):
    first = generate(50, np.random.default_rng(7))
    assert first == generate(50, np.random.default_rng(7))
    assert first != generate(50, np.random.default_rng(8))


def test_generated_targets_are_right():
    for source, target in addition(200, np.random.default_rng(0), max_digits=4):
        a, b = source.split("+")
        assert int(target) == int(a) + int(b) and len(a) <= 4
    for source, target in reverse_digits(200, np.random.default_rng(0), 2, 5):
        assert target == source[::-1] and 2 <= len(source) <= 5 and source.isdigit()
    for source, target in dates(200, np.random.default_rng(0)):
        dt.date.fromisoformat(target)


def test_there_are_a_dozen_date_formats_and_all_parse_back_to_the_same_date():
    assert len(DATE_FORMATS) == 12 and len(set(DATE_FORMATS)) == 12
    rng = np.random.default_rng(1)
    days = [dt.date(2021, 3, 3), dt.date(1970, 1, 1), dt.date(2049, 12, 31), dt.date(2000, 2, 29)]
    days += [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 29000, 100)]
    for day in days:
        for template in DATE_FORMATS:
            assert parse_date(format_date(day, template), template) == day, template
    assert format_date(dt.date(2021, 3, 3), "{d} {B} {Y}") == "3 March 2021"
    assert format_date(dt.date(2021, 3, 3), "{dd}/{mm}/{yy}") == "03/03/21"
    assert format_date(dt.date(2021, 3, 3), "{b} {d}, {Y}") == "Mar 3, 2021"
    assert format_date(dt.date(2021, 3, 22), "{o} of {B} {Y}") == "22nd of March 2021"


def test_tsv_reader(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("hello\tbonjour\n\n  cat \tchat\n", encoding="utf-8")
    assert read_pairs_tsv(path) == [("hello", "bonjour"), ("cat", "chat")]


@pytest.mark.parametrize("text,match", [
    ("a\tb\nno tab here\n", r"line 2: expected source<TAB>target \(2 fields\), got 1 field"),
    ("a\tb\tc\n", r"line 1: expected source<TAB>target \(2 fields\), got 3 fields"),
    ("a\t \n", "line 1: expected a non-empty source and target"),
    ("\n\n", "expected at least one source<TAB>target line, got none"),
])
def test_tsv_reader_errors(tmp_path, text, match):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_pairs_tsv(path)


def test_tsv_reader_missing_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_pairs_tsv(tmp_path / "nope.tsv")
    (tmp_path / "bin.tsv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="cannot be read as UTF-8"):
        read_pairs_tsv(tmp_path / "bin.tsv")


@pytest.mark.parametrize("tokens,text", [("char", "3 Mar 21"), ("word", "le chat noir")])
def test_vocabulary_round_trip_and_json(tokens, text):
    vocab = Vocabulary.build([text, text[::-1]], tokens=tokens)
    ids = vocab.encode(text)
    assert vocab.decode(ids + [EOS, 5, 6]) == text
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos and again.encode(text) == ids
    assert vocab.encode("§")[0] == UNK if tokens == "char" else vocab.encode("chien") == [UNK]
    with pytest.raises(DataError, match="expected the specials"):
        Vocabulary(["a", "b"], tokens)
