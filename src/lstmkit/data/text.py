"""Text sources: labelled texts (CSV/JSONL), CoNLL-style tagged tokens and plain text for a character LM.

Each text becomes a sequence of token ids held as ``x`` of shape (N, L, 1) (float32 ids, which the token
models' embedding reads back as integers) with ``lengths``; padded steps hold id 0, ``<pad>``. The
``Tokenizer`` and its vocabulary are fitted on the training split only, so a word that appears only in
the test split reads as ``<unk>`` (id 1), exactly as it would for a user's new text. (The validation part,
which ``split_train_val`` holds out of the training split afterwards, does add words to the vocabulary;
the test split never does.) The tokenizer is
plain JSON (``Tokenizer.to_dict``) which a run stores in the model folder's ``meta.json``; loading the
model rebuilds it, so raw text can be classified, tagged or continued.

Sources (``[data] name``), each reading ``[data] path`` and, when given, ``[data] test_path``:

- ``text-classification``: a ``.csv``/``.tsv`` file with a header, or a ``.jsonl`` file of one JSON object
  per line, with a text and a label column (``[data] text_column``, ``label_column``). ``y``: class index
  per text; label names are the training labels, sorted.
- ``tagging``: CoNLL style, one ``token label`` per line (the first field is the token, the last the
  label, so 4-column CoNLL-2003 files work too), a blank line between sentences, ``-DOCSTART-`` lines
  skipped. ``y``: (N, L) label index per token, ``IGNORE_INDEX`` on padding.
- ``char-lm``: any UTF-8 text, cut into windows of ``[data] length`` characters (default 64); ``y`` is the
  next character at each step. The test split is the end of the text (no window overlaps training).

Every text source needs ``[data] normalize = false``: token ids are indices, not measurements.

Example::

    cfg = DataConfig(name="text-classification", path="reviews.csv", normalize=False)
    source = load_source("text-classification", config=cfg)
    tokenizer = Tokenizer.from_dict(source.meta["tokenizer"])
    tokenizer.encode("a fine film")           # [ids...]
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from lstmkit.data.base import IGNORE_INDEX, ArrayDataset, SourceData, register_source
from lstmkit.errors import ConfigError, DataError

__all__ = ["Tokenizer", "PAD", "UNK", "PAD_ID", "UNK_ID", "LEVELS", "read_labelled_texts", "read_conll",
           "pad_ids", "SPLIT_SEED", "CHAR_WINDOW"]

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
LEVELS = ("word", "char", "whitespace")
SPLIT_SEED = 0
"""The held-out test texts depend on this fixed seed only, so every run and machine sees the same test set."""
CHAR_WINDOW = 64
"""``char-lm``'s window length when ``[data] length`` is 0."""
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class Tokenizer:
    """Text to token ids and back, with a vocabulary fitted on training texts.

    Attributes:
        level: ``"word"`` (runs of letters and digits, and each punctuation mark), ``"char"`` (every
            character, spaces and newlines included) or ``"whitespace"`` (the text split on whitespace, for
            pre-tokenised input such as CoNLL files).
        lowercase: lowercase the text before splitting.
        vocab: the tokens, index = id; ``vocab[0] == "<pad>"`` and ``vocab[1] == "<unk>"``.
        max_length: keep at most this many tokens of a text (0: all).
    """

    level: str
    lowercase: bool
    vocab: list[str]
    max_length: int = 0

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise DataError(f"Tokenizer level: expected one of {', '.join(LEVELS)}, got {self.level!r}")
        if len(self.vocab) < 2 or self.vocab[:2] != [PAD, UNK]:
            raise DataError(f"Tokenizer vocab: expected {PAD!r} and {UNK!r} as its first two entries, "
                            f"got {self.vocab[:2]!r}")
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        if len(self._ids) != len(self.vocab):
            raise DataError("Tokenizer vocab: expected each token once, got repeated tokens")

    @classmethod
    def fit(cls, texts: Iterable[str | Sequence[str]], level: str = "word", lowercase: bool = True,
            max_vocab: int = 0, min_freq: int = 1, max_length: int = 0) -> Tokenizer:
        """Build the vocabulary from training ``texts`` (strings, or token lists for ``"whitespace"``).

        Tokens seen at least ``min_freq`` times are kept, the ``max_vocab`` most frequent of them when
        ``max_vocab`` > 0 (ties broken alphabetically, so the vocabulary is deterministic).
        """
        tokenizer = cls(level, lowercase, [PAD, UNK], max_length)
        counts = Counter(token for text in texts for token in tokenizer.split(text, truncate=False))
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_vocab:
            kept = kept[:max_vocab]
        return cls(level, lowercase, [PAD, UNK, *kept], max_length)

    def __len__(self) -> int:
        return len(self.vocab)

    def split(self, text: str | Sequence[str], truncate: bool = True) -> list[str]:
        """The tokens of ``text`` (a string, or already a list of tokens), lowercased if asked."""
        if isinstance(text, str):
            if self.lowercase:
                text = text.lower()
            if self.level == "char":
                tokens = list(text)
            elif self.level == "word":
                tokens = _WORD.findall(text)
            else:
                tokens = text.split()
        else:
            tokens = [t.lower() for t in text] if self.lowercase else list(text)
        return tokens[: self.max_length] if truncate and self.max_length else tokens

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """Token ids of ``text``; tokens outside the vocabulary get ``UNK_ID``."""
        return [self._ids.get(token, UNK_ID) for token in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: characters joined as they are, words joined by spaces; ``<pad>`` dropped."""
        tokens = [self.vocab[i] for i in ids if i != PAD_ID]
        return "".join(tokens) if self.level == "char" else " ".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: what a model folder stores to rebuild this tokenizer."""
        return {"level": self.level, "lowercase": self.lowercase, "max_length": self.max_length,
                "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, d: Any) -> Tokenizer:
        """The tokenizer of ``to_dict``'s output; a malformed one is a ``DataError``."""
        if not isinstance(d, dict) or not isinstance(d.get("vocab"), list) or \
                not all(isinstance(t, str) for t in d["vocab"]):
            raise DataError("tokenizer: expected an object with a list of string tokens \"vocab\"")
        lowercase, max_length = d.get("lowercase", True), d.get("max_length", 0)
        if not isinstance(lowercase, bool) or isinstance(max_length, bool) or not isinstance(max_length, int):
            raise DataError(f"tokenizer: expected a boolean lowercase and an integer max_length, "
                            f"got {lowercase!r} and {max_length!r}")
        return cls(str(d.get("level")), lowercase, list(d["vocab"]), max_length)


def pad_ids(sequences: Sequence[Sequence[int]], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists to ``x`` (N, L, 1) float32, zero (``<pad>``) padded, and ``lengths`` (N,).

    ``L`` is ``length`` or the longest sequence. Every sequence must hold at least one id.
    """
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.size and lengths.min() < 1:
        raise DataError(f"pad_ids: sequence {int(lengths.argmin())} is empty; expected at least one token")
    steps = int(length if length is not None else (lengths.max() if lengths.size else 1))
    x = np.zeros((len(sequences), steps, 1), dtype=np.float32)  # (N, L, 1)
    for i, ids in enumerate(sequences):
        x[i, : len(ids), 0] = ids
    return x, lengths


# --------------------------------------------------------------------------------------------------------
# Readers


@dataclass
class LabelledText:
    text: str
    label: str
    line: int


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{what} {path}: expected a file, got a folder") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {path}: expected UTF-8 text, got {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise DataError(f"{what} {path}: cannot be read ({exc.strerror})") from None


def read_labelled_texts(path: str | Path, text_column: str = "text", label_column: str = "label") -> list[LabelledText]:
    """Texts and their labels from a ``.csv``/``.tsv`` file with a header or a ``.jsonl`` file.

    Raises:
        DataError: for another suffix, a missing column or key, an empty text or label, a JSONL line that
            is not a JSON object, or a file without rows; each names the file and the line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".ndjson"):
        raise DataError(f"text file {path}: expected a .csv, .tsv or .jsonl file, got {suffix or 'no suffix'!r}")
    content = _read_text(path, "text file")
    rows = (_csv_rows if suffix in (".csv", ".tsv") else _jsonl_rows)(path, content, text_column, label_column)
    if not rows:
        raise DataError(f"text file {path}: expected at least one labelled text, got none")
    return rows


def _csv_rows(path: Path, content: str, text_column: str, label_column: str) -> list[LabelledText]:
    reader = csv.DictReader(content.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    columns = reader.fieldnames or []
    for key, column in (("text_column", text_column), ("label_column", label_column)):
        if column not in columns:
            raise DataError(f"{path}: expected a column {column!r} ([data] {key}), got columns {columns}")
    rows = []
    try:
        for record in reader:
            line = reader.line_num
            rows.append(_labelled(path, line, record.get(text_column), record.get(label_column), text_column,
                                  label_column))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _jsonl_rows(path: Path, content: str, text_column: str, label_column: str) -> list[LabelledText]:
    rows = []
    for line, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {line}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise DataError(f"{path} line {line}: not valid JSON (arrays or objects nested too deeply)") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {line}: expected a JSON object, got {type(record).__name__}")
        for key, column in (("text_column", text_column), ("label_column", label_column)):
            if column not in record:
                raise DataError(f"{path} line {line}: expected a key {column!r} ([data] {key}), "
                                f"got keys {sorted(record)}")
        rows.append(_labelled(path, line, record[text_column], record[label_column], text_column, label_column))
    return rows


def _labelled(path: Path, line: int, text: Any, label: Any, text_column: str, label_column: str) -> LabelledText:
    if not isinstance(text, str) or not text.strip():
        got = "nothing" if text is None or (isinstance(text, str)) else type(text).__name__
        raise DataError(f"{path} line {line}: expected a non-empty text in {text_column!r}, got {got}")
    if isinstance(label, (dict, list)) or label is None or not str(label).strip():
        raise DataError(f"{path} line {line}: expected a label in {label_column!r}, got "
                        f"{'nothing' if label is None or isinstance(label, str) else type(label).__name__}")
    return LabelledText(text, str(label).strip(), line)


@dataclass
class TaggedSentence:
    tokens: list[str]
    labels: list[str]
    line: int
    """The line of the sentence's first token."""


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """Sentences from a CoNLL-style file: ``token label`` per line, blank lines between sentences.

    The first whitespace-separated field is the token and the last is the label; ``-DOCSTART-`` lines
    are skipped.

    Raises:
        DataError: for a line with one field (naming the line) or a file without sentences.
    """
    path = Path(path)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    labels: list[str] = []
    start = 0
    for line, raw in enumerate(_read_text(path, "CoNLL file").splitlines(), start=1):
        fields = raw.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append(TaggedSentence(tokens, labels, start))
            tokens, labels = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{path} line {line}: expected a token and a label separated by whitespace, "
                            f"got one field {raw.strip()!r}")
        if not tokens:
            start = line
        tokens.append(fields[0])
        labels.append(fields[-1])
    if tokens:
        sentences.append(TaggedSentence(tokens, labels, start))
    if not sentences:
        raise DataError(f"CoNLL file {path}: expected at least one sentence, got none")
    return sentences


# --------------------------------------------------------------------------------------------------------
# Sources


def _check_config(name: str, config: Any) -> tuple[Path, Path | None]:
    if config.normalize:
        raise ConfigError(f"config [data] normalize: expected false for the text source {name!r} (token ids "
                          "are indices, not measurements to standardise), got true")
    if not config.path:
        raise ConfigError(f"config [data] path: the source {name!r} reads a file; expected a path, got none")
    return Path(config.path).expanduser(), Path(config.test_path).expanduser() if config.test_path else None


def _resolve(path: Path, data_dir: Path | None) -> Path:
    return data_dir / path if data_dir is not None and not path.is_absolute() else path


def _hold_out(count: int, fraction: float, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(train_index, test_index)``: a fixed seeded ``fraction`` of ``count`` items held out, order kept."""
    n_test = max(1, int(round(fraction * count)))
    if n_test >= count:
        raise DataError(f"{what}: expected at least 2 items to hold out a test split "
                        f"([data] test_fraction {fraction}), got {count}; or give [data] test_path")
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _label_index(names: list[str], label: str, where: str) -> int:
    try:
        return names.index(label)
    except ValueError:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise DataError(f"{where}: label {label!r} does not occur in the training split (labels: {shown})") from None


@register_source("text-classification", configurable=True)
def load_text_classification(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """Labelled texts from ``[data] path`` (CSV/JSONL): x (N, L, 1) token ids, y (N,) label indices."""
    path, test_path = _check_config("text-classification", config)
    path = _resolve(path, data_dir)
    rows = read_labelled_texts(path, config.text_column, config.label_column)
    if test_path is not None:
        test_rows = read_labelled_texts(_resolve(test_path, data_dir), config.text_column, config.label_column)
        train_rows = rows
    else:
        train_idx, test_idx = _hold_out(len(rows), config.test_fraction, f"text file {path}")
        train_rows, test_rows = [rows[i] for i in train_idx], [rows[i] for i in test_idx]
    tokenizer = Tokenizer.fit((r.text for r in train_rows), config.tokenizer, config.lowercase, config.max_vocab,
                              config.min_freq, config.length)
    label_names = sorted({r.label for r in train_rows})
    test_file = test_path or path

    def encode(items: list[LabelledText], file: Path) -> list[list[int]]:
        ids = []
        for r in items:
            encoded = tokenizer.encode(r.text)
            if not encoded:
                raise DataError(f"{file} line {r.line}: the text {r.text[:40]!r} has no {tokenizer.level} tokens")
            ids.append(encoded)
        return ids

    def dataset(items: list[LabelledText], ids: list[list[int]], file: Path, length: int) -> ArrayDataset:
        y = np.array([_label_index(label_names, r.label, f"{file} line {r.line}") for r in items], dtype=np.int64)
        x, lengths = pad_ids(ids, length)
        return ArrayDataset(x, y, lengths)

    train_ids, test_ids = encode(train_rows, path), encode(test_rows, test_file)
    length = max(len(ids) for ids in train_ids + test_ids)  # both splits share L (padding is masked)
    train = dataset(train_rows, train_ids, path, length)
    test = dataset(test_rows, test_ids, test_file, length)
    log.info("text-classification: %d training texts, %d tokens in the vocabulary, %d labels",
             len(train_rows), len(tokenizer), len(label_names))
    return SourceData(train, test, label_names, image_shape=None, pixel_max=None, name="text-classification",
                      meta={"tokenizer": tokenizer.to_dict()}, model_settings={"vocab_size": len(tokenizer)})


@register_source("tagging", configurable=True)
def load_tagging(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """CoNLL-style sentences from ``[data] path``: x (N, L, 1) token ids, y (N, L) label per token."""
    path, test_path = _check_config("tagging", config)
    path = _resolve(path, data_dir)
    sentences = read_conll(path)
    if test_path is not None:
        train_sentences, test_sentences = sentences, read_conll(_resolve(test_path, data_dir))
    else:
        train_idx, test_idx = _hold_out(len(sentences), config.test_fraction, f"CoNLL file {path}")
        train_sentences = [sentences[i] for i in train_idx]
        test_sentences = [sentences[i] for i in test_idx]
    tokenizer = Tokenizer.fit((s.tokens for s in train_sentences), "whitespace", config.lowercase,
                              config.max_vocab, config.min_freq)
    label_names = sorted({label for s in train_sentences for label in s.labels})
    test_file = test_path or path

    length = max(len(s.tokens) for s in train_sentences + test_sentences)  # both splits share L

    def dataset(items: list[TaggedSentence], file: Path) -> ArrayDataset:
        x, lengths = pad_ids([tokenizer.encode(s.tokens) for s in items], length)
        y = np.full(x.shape[:2], IGNORE_INDEX, dtype=np.int64)  # (N, L)
        for i, s in enumerate(items):
            y[i, : len(s.labels)] = [_label_index(label_names, label, f"{file} line {s.line + k}")
                                     for k, label in enumerate(s.labels)]
        return ArrayDataset(x, y, lengths)

    train, test = dataset(train_sentences, path), dataset(test_sentences, test_file)
    log.info("tagging: %d training sentences, %d tokens in the vocabulary, %d labels",
             len(train_sentences), len(tokenizer), len(label_names))
    return SourceData(train, test, label_names, image_shape=None, pixel_max=None, name="tagging",
                      meta={"tokenizer": tokenizer.to_dict()}, model_settings={"vocab_size": len(tokenizer)})


def _char_windows(ids: list[int], window: int) -> ArrayDataset:
    """Non-overlapping windows: x = ids[s : s + window], y = ids[s + 1 : s + window + 1]; the last may be short."""
    inputs, targets = [], []
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start: start + window + 1]
        inputs.append(chunk[:-1])
        targets.append(chunk[1:])
    x, lengths = pad_ids(inputs, window)
    y = np.full((len(inputs), window), IGNORE_INDEX, dtype=np.int64)  # (N, L)
    for i, t in enumerate(targets):
        y[i, : len(t)] = t
    return ArrayDataset(x, y, lengths)


@register_source("char-lm", configurable=True)
def load_char_lm(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """A character language model's windows of ``[data] path``: x (N, L, 1) ids, y (N, L) the next ids."""
    path, test_path = _check_config("char-lm", config)
    path = _resolve(path, data_dir)
    text = _read_text(path, "text file")
    window = config.length or CHAR_WINDOW
    if test_path is not None:
        train_text, test_text = text, _read_text(_resolve(test_path, data_dir), "text file")
    else:
        cut = int(len(text) * (1 - config.test_fraction))
        train_text, test_text = text[:cut], text[cut:]
    for what, part in (("training", train_text), ("test", test_text)):
        if len(part) < 2:
            raise DataError(f"char-lm: the {what} text of {path} has {len(part)} characters; expected at "
                            f"least 2 (one input and its next character)")
    tokenizer = Tokenizer.fit([train_text], "char", config.lowercase, config.max_vocab, config.min_freq)
    train = _char_windows(tokenizer.encode(train_text), window)
    test = _char_windows(tokenizer.encode(test_text), window)
    log.info("char-lm: %d training characters in %d windows of %d, %d characters in the vocabulary",
             len(train_text), len(train), window, len(tokenizer))
    return SourceData(train, test, list(tokenizer.vocab), image_shape=None, pixel_max=None, name="char-lm",
                      meta={"tokenizer": tokenizer.to_dict()}, model_settings={"vocab_size": len(tokenizer)})
