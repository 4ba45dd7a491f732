"""The config of the ``seq2seq`` task (sequence-to-sequence recipes): its tables, strictly typed and checked.

Kept apart from ``lstmkit.tasks.seq2seq`` (the task, which needs PyTorch) so that ``lstmkit train`` checks a
recipe and its ``--set`` overrides before anything heavy is imported: a wrong key answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from lstmkit.config import TrainConfig, apply_overrides, build_config
from lstmkit.errors import ConfigError

__all__ = ["Seq2SeqConfig", "Seq2SeqDataConfig", "Seq2SeqModelConfig", "config_from_table"]


@dataclass
class Seq2SeqDataConfig:
    """``[data]`` of a seq2seq recipe: which pairs, how many, how they are tokenised."""

    name: Literal["reverse", "addition", "dates", "tsv"] = "dates"
    """A generated task (``lstmkit.data.pairs``), or ``tsv`` for the file at ``path``."""
    path: str | None = None
    """A UTF-8 file of ``source<TAB>target`` lines (with ``name = "tsv"``)."""
    tokens: Literal["char", "word"] = "char"
    """Split sources and targets into characters or into words."""
    samples: int = field(default=10000, metadata={"min": 1})
    """Generated training pairs (generated tasks only)."""
    val_samples: int = field(default=500, metadata={"min": 1})
    """Generated validation pairs (generated tasks only)."""
    test_samples: int = field(default=1000, metadata={"min": 1})
    """Generated test pairs (generated tasks only); held-out pairs whose source is also a training source are
    dropped."""
    val_fraction: float = field(default=0.05, metadata={"min": 0, "max": 0.5, "exclusive": True})
    """Share of a TSV file held out for validation."""
    test_fraction: float = field(default=0.1, metadata={"min": 0, "max": 0.5, "exclusive": True})
    """Share of a TSV file held out for the test."""
    max_digits: int = field(default=3, metadata={"min": 1})
    """``addition``: digits of each operand."""
    min_length: int = field(default=3, metadata={"min": 1})
    """``reverse``: fewest digits per string."""
    max_length: int = field(default=12, metadata={"min": 1})
    """``reverse``: most digits per string."""


@dataclass
class Seq2SeqModelConfig:
    """``[model]`` of a seq2seq recipe (see ``lstmkit.models.seq2seq.Seq2Seq``)."""

    task: Literal["seq2seq"] = "seq2seq"
    """Always ``seq2seq``: it picks this kind of recipe."""
    embedding_size: int = field(default=32, metadata={"min": 0, "exclusive": True})
    """Width of the source and target token embeddings."""
    hidden_size: int = field(default=128, metadata={"min": 0, "exclusive": True})
    """Features of the encoder and decoder LSTMs' cell states."""
    num_layers: int = field(default=1, metadata={"min": 0, "exclusive": True})
    """Stacked LSTM layers of the encoder and of the decoder."""
    bidirectional: bool = True
    """The encoder reads the source in both directions."""
    attention: Literal["additive", "dot", "general"] = "general"
    """``additive`` (Bahdanau), ``dot`` or ``general`` (Luong)."""
    dropout: float = field(default=0.0, metadata={"min": 0, "max": 0.9})
    """Dropout on the embeddings, between stacked layers and before the output layer."""
    teacher_forcing: float = field(default=1.0, metadata={"min": 0, "max": 1})
    """Probability of feeding the true previous token in training (1: always; 0: the model's own)."""
    max_output_length: int = field(default=0, metadata={"min": 0})
    """Longest decoded output; 0: the longest training target plus 5."""


@dataclass
class Seq2SeqConfig:
    """A seq2seq run: ``[data]``, ``[model]`` and ``[train]`` (the regular ``TrainConfig``; ``monitor``,
    ``checkpoint_every`` and ``tensorboard`` are not used: the best epoch is the best validation exact match)."""

    data: Seq2SeqDataConfig = field(default_factory=Seq2SeqDataConfig)
    model: Seq2SeqModelConfig = field(default_factory=Seq2SeqModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def config_from_table(table: dict[str, Any], overrides: Iterable[str] = ()) -> Seq2SeqConfig:
    """A strict ``Seq2SeqConfig`` from parsed TOML tables: unknown keys and wrong types name the key."""
    config = build_config(Seq2SeqConfig, apply_overrides(table, overrides))
    if config.data.name == "tsv" and not config.data.path:
        raise ConfigError('config [data] path: expected a TSV file for name = "tsv", got none')
    if config.data.min_length > config.data.max_length:
        raise ConfigError(f"config [data] min_length: expected at most max_length ({config.data.max_length}), "
                          f"got {config.data.min_length}")
    return config
