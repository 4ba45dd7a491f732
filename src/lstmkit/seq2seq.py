"""Sequence to sequence: train an attentional encoder-decoder on text pairs, evaluate it, translate with it.

``run(config, out_dir)`` is what ``lstmkit train configs/dates.toml`` runs for ``[model] task = "seq2seq"``:
make the pairs (a generated task under the seed, or the user's TSV), build the vocabularies from the
training pairs, train with teacher forcing, keep the epoch with the best validation exact match, then
report on the held-out test pairs:

- ``test_exact_match``: the fraction of outputs equal to the target, greedy decoding;
- ``test_token_accuracy``: the fraction of target tokens (with ``<eos>``) predicted at their position;
- ``test_attention_monotonic``: the fraction of decoder steps whose most-attended source position does
  not move left of the previous step's (1.0 is a perfectly monotonic alignment), and
  ``test_attention_spearman``, the mean rank correlation of decoder step and most-attended position.
  (Dates written day first align non-monotonically with ISO's year-first order by nature.)

The run folder holds ``config.toml``, ``metrics.csv``, ``metrics.json``, ``evaluation.txt`` (examples),
``attention.png`` (the attention matrices of a few test examples), ``checkpoints/best.pt`` and ``model/``:
``model.safetensors``, ``config.toml``, ``meta.json`` and ``vocab.json`` (both vocabularies, JSON).

``Translator.load(model_dir).translate("3 March 2021")`` decodes one input (greedy, or ``beam=K``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import lstmkit
from lstmkit.config import TrainConfig
from lstmkit.data.pairs import GENERATORS, Pair, read_pairs_tsv
from lstmkit.data.tokenizer import BOS, EOS, PAD, Vocabulary
from lstmkit.errors import ConfigError, DataError, ModelFolderError
from lstmkit.model_folder import atomic_write_bytes
from lstmkit.models.seq2seq import Seq2Seq
from lstmkit.task_runs import BestEpoch, EpochLog, load_task_config, start_run_dir, write_json
from lstmkit.trainer import apply_runtime, make_optimizer, make_scheduler, seed_everything

__all__ = ["Seq2SeqConfig", "Seq2SeqDataConfig", "Seq2SeqModelConfig", "load_config", "make_pairs", "run",
           "summary", "evaluate_pairs", "attention_monotonicity", "attention_spearman", "Translator", "Translation"]

log = logging.getLogger(__name__)


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


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                table: dict[str, Any] | None = None) -> Seq2SeqConfig:
    """A strict ``Seq2SeqConfig`` from a TOML recipe (or its tables already read, ``table``) and ``--set`` overrides."""
    config = load_task_config(Seq2SeqConfig, path, overrides, table)
    if config.data.name == "tsv" and not config.data.path:
        raise ConfigError('config [data] path: expected a TSV file for name = "tsv", got none')
    if config.data.min_length > config.data.max_length:
        raise ConfigError(f"config [data] min_length: expected at most max_length ({config.data.max_length}), "
                          f"got {config.data.min_length}")
    return config


# --------------------------------------------------------------------------------------------------------
# Data


def make_pairs(config: Seq2SeqDataConfig, seed: int) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train, validation and test pairs. Generated tasks draw each split from its own stream of ``seed``
    and drop held-out pairs whose source is a training source; a TSV file is shuffled and split."""
    if config.name == "tsv":
        pairs = read_pairs_tsv(config.path)
        order = np.random.default_rng(seed).permutation(len(pairs))
        n_test = max(1, round(config.test_fraction * len(pairs)))
        n_val = max(1, round(config.val_fraction * len(pairs)))
        if len(pairs) < n_test + n_val + 1:
            raise DataError(f"pairs file {config.path}: expected at least {n_test + n_val + 1} pairs to hold out "
                            f"validation and test pairs, got {len(pairs)}")
        shuffled = [pairs[i] for i in order]
        return shuffled[n_test + n_val:], shuffled[n_test:n_test + n_val], shuffled[:n_test]
    options = {"addition": {"max_digits": config.max_digits},
               "reverse": {"min_length": config.min_length, "max_length": config.max_length}}.get(config.name, {})
    generate = GENERATORS[config.name]
    train = generate(config.samples, np.random.default_rng([seed, 0]), **options)
    seen = {source for source, _ in train}
    val = [p for p in generate(config.val_samples, np.random.default_rng([seed, 1]), **options) if p[0] not in seen]
    test = [p for p in generate(config.test_samples, np.random.default_rng([seed, 2]), **options) if p[0] not in seen]
    if not val or not test:
        raise DataError(f"{config.name}: every held-out pair also appears in training; the task has too few "
                        "distinct inputs for this many samples")
    return train, val, test


def _pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


@dataclass
class EncodedPairs:
    """Token ids of pairs: sources without specials, targets ending with ``<eos>``."""

    sources: list[list[int]]
    targets: list[list[int]]

    @classmethod
    def encode(cls, pairs: list[Pair], source_vocab: Vocabulary, target_vocab: Vocabulary) -> EncodedPairs:
        sources = [source_vocab.encode(s) or [PAD] for s, _ in pairs]
        return cls(sources, [target_vocab.encode(t) + [EOS] for _, t in pairs])

    def batch(self, index: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``src`` (N, S), ``lengths`` (N,), ``tgt_in`` (N, T) starting with ``<bos>``, ``tgt_out`` (N, T)."""
        index = list(index)
        sources = [self.sources[i] for i in index]
        targets = [self.targets[i] for i in index]
        lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
        return _pad(sources), lengths, _pad([[BOS] + t[:-1] for t in targets]), _pad(targets)


# --------------------------------------------------------------------------------------------------------
# Metrics


def attention_monotonicity(attention: np.ndarray) -> float:
    """The fraction of decoder steps t >= 1 whose most-attended source position is not left of step t-1's;
    ``attention`` is one example's (T, S) matrix. NaN for fewer than 2 steps."""
    positions = np.asarray(attention).argmax(axis=1)
    if len(positions) < 2:
        return float("nan")
    return float(np.mean(np.diff(positions) >= 0))


def attention_spearman(attention: np.ndarray) -> float:
    """Spearman's rank correlation between the decoder step and its most-attended source position, for
    one example's (T, S) attention; 1.0 is a strictly monotonic alignment, NaN when either is constant."""
    positions = np.asarray(attention).argmax(axis=1)
    if len(positions) < 2 or np.all(positions == positions[0]):
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(np.arange(len(positions)), positions).statistic)


@torch.no_grad()
def decode_all(model: Seq2Seq, data: EncodedPairs, max_length: int,
               batch_size: int = 256) -> tuple[list[list[int]], list[np.ndarray]]:
    """Greedy outputs (ids up to and with ``<eos>``) and their attention (T, S_n), for every pair, decoded on
    the model's device."""
    model.eval()
    device = next(model.parameters()).device
    outputs, attentions = [], []
    for start in range(0, len(data.sources), batch_size):
        index = range(start, min(start + batch_size, len(data.sources)))
        src, lengths, _, _ = data.batch(index)
        ids, attention = (t.cpu() for t in model.greedy(src.to(device), lengths, max_length))
        for row, weights, length in zip(ids.tolist(), attention, lengths.tolist()):
            cut = row.index(EOS) + 1 if EOS in row else len(row)
            outputs.append(row[:cut])
            attentions.append(weights[:cut, :length].numpy())
    return outputs, attentions


def evaluate_pairs(outputs: list[list[int]], targets: list[list[int]]) -> dict[str, float]:
    """Exact match (whole output equals target) and token accuracy (target tokens, with ``<eos>``, predicted
    at their position) of decoded ids against target ids."""
    exact = sum(o == t for o, t in zip(outputs, targets))
    correct = sum(sum(a == b for a, b in zip(o, t)) for o, t in zip(outputs, targets))
    total = sum(len(t) for t in targets)
    return {"exact_match": exact / max(len(targets), 1), "token_accuracy": correct / max(total, 1)}


# --------------------------------------------------------------------------------------------------------
# Training


def build_model(config: Seq2SeqModelConfig, source_size: int, target_size: int) -> Seq2Seq:
    return Seq2Seq(source_size, target_size, embedding_size=config.embedding_size, hidden_size=config.hidden_size,
                   num_layers=config.num_layers, bidirectional=config.bidirectional, attention=config.attention,
                   dropout=config.dropout)


def _train_epoch(model: Seq2Seq, data: EncodedPairs, optimizer: torch.optim.Optimizer,
                 scheduler: Any, tc: TrainConfig, teacher_forcing: float, order: torch.Tensor,
                 device: torch.device) -> dict[str, float]:
    model.train()
    criterion = nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum")
    loss_sum, tokens, correct = 0.0, 0, 0
    for batch in order.split(tc.batch_size):
        src, lengths, tgt_in, tgt_out = (t.to(device) for t in data.batch(batch.tolist()))
        logits, _ = model(src, lengths.cpu(), tgt_in, teacher_forcing=teacher_forcing)  # (N, T, V)
        count = int((tgt_out != PAD).sum())
        loss = criterion(logits.flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad(set_to_none=True)
        (loss / count).backward()
        if tc.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += float(loss.detach())
        tokens += count
        correct += int(((logits.argmax(-1) == tgt_out) & (tgt_out != PAD)).sum())
    return {"train_loss": loss_sum / max(tokens, 1), "train_token_accuracy": correct / max(tokens, 1)}


def run(config: Seq2SeqConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out_dir``; returns the final metrics (also in metrics.json)."""
    tc, mc = config.train, config.model
    out_dir = Path(out_dir)
    device = apply_runtime(tc)
    seed_everything(tc.seed)
    train_pairs, val_pairs, test_pairs = make_pairs(config.data, tc.seed)
    source_vocab = Vocabulary.build((s for s, _ in train_pairs), config.data.tokens)
    target_vocab = Vocabulary.build((t for _, t in train_pairs), config.data.tokens)
    train, val, test = (EncodedPairs.encode(pairs, source_vocab, target_vocab)
                        for pairs in (train_pairs, val_pairs, test_pairs))
    max_length = mc.max_output_length or max(len(t) for t in train.targets) + 5
    log.info("%s: %d train, %d val, %d test pairs; vocabularies %d and %d tokens", config.data.name,
             len(train_pairs), len(val_pairs), len(test_pairs), len(source_vocab), len(target_vocab))
    start_run_dir(out_dir, config)

    model = build_model(mc, len(source_vocab), len(target_vocab)).to(device)
    optimizer = make_optimizer(model.parameters(), tc)
    scheduler = make_scheduler(optimizer, tc, math.ceil(len(train_pairs) / tc.batch_size))
    shuffle = torch.Generator().manual_seed(tc.seed)
    epoch_log = EpochLog(out_dir / "metrics.csv", tc.epochs)
    best = BestEpoch(out_dir / "checkpoints" / "best.pt", higher_is_better=True, patience=tc.patience)
    train_seconds = 0.0
    for epoch in range(1, tc.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        row = {"epoch": epoch, "lr": lr, **_train_epoch(model, train, optimizer, scheduler, tc, mc.teacher_forcing,
                                                         torch.randperm(len(train_pairs), generator=shuffle), device)}
        seconds = time.perf_counter() - started
        train_seconds += seconds
        outputs, _ = decode_all(model, val, max_length)
        row.update({f"val_{k}": v for k, v in evaluate_pairs(outputs, val.targets).items()})
        row["seconds"] = round(time.perf_counter() - started, 3)
        epoch_log.append(row)
        if best.update(epoch, row["val_exact_match"], model):
            break
    model.load_state_dict(best.state)
    model.cpu().eval()

    outputs, attentions = decode_all(model, test, max_length)
    report = evaluate_pairs(outputs, test.targets)
    monotonic = [attention_monotonicity(a) for a in attentions]
    spearman = [attention_spearman(a) for a in attentions]
    metrics = {"test_exact_match": report["exact_match"], "test_token_accuracy": report["token_accuracy"],
               "test_attention_monotonic": float(np.nanmean(monotonic)),
               "test_attention_spearman": float(np.nanmean(spearman)) if not np.all(np.isnan(spearman)) else None,
               "best_epoch": best.epoch, "epochs_run": len(epoch_log.rows), "train_seconds": round(train_seconds, 3),
               "test_pairs": len(test_pairs)}
    _write_examples(out_dir, test_pairs, outputs, attentions, source_vocab, target_vocab, metrics)
    save_model(out_dir / "model", model, config, source_vocab, target_vocab, max_length)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _write_examples(out_dir: Path, pairs: list[Pair], outputs: list[list[int]], attentions: list[np.ndarray],
                    source_vocab: Vocabulary, target_vocab: Vocabulary, metrics: dict[str, Any]) -> None:
    from lstmkit.viz_seq import plot_attention

    lines = [f"test exact match {metrics['test_exact_match']:.4f}   token accuracy "
             f"{metrics['test_token_accuracy']:.4f}   attention monotonic {metrics['test_attention_monotonic']:.3f}"
             f"   ({metrics['test_pairs']} pairs)", "", "source\ttarget\toutput"]
    for (source, target), ids in list(zip(pairs, outputs))[:20]:
        lines.append(f"{source}\t{target}\t{target_vocab.decode(ids)}")
    (out_dir / "evaluation.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples = []
    for (source, _), ids, attention in list(zip(pairs, outputs, attentions))[:4]:
        out_tokens = [target_vocab.itos[i] for i in ids]  # one label per attention row, specials too
        examples.append((attention, _tokens(source, source_vocab), out_tokens))
    plot_attention(examples, out_dir / "attention.png")


def _tokens(text: str, vocab: Vocabulary) -> list[str]:
    from lstmkit.data.tokenizer import tokenize

    return tokenize(text, vocab.tokens) or ["<pad>"]


# --------------------------------------------------------------------------------------------------------
# Model folder and translation

WEIGHTS, CONFIG, META, VOCAB = "model.safetensors", "config.toml", "meta.json", "vocab.json"


def save_model(folder: Path, model: Seq2Seq, config: Seq2SeqConfig, source_vocab: Vocabulary,
               target_vocab: Vocabulary, max_length: int) -> Path:
    """Write the weights (safetensors), the config, the metadata and both vocabularies (JSON)."""
    import json

    from lstmkit.task_runs import dump_task_config

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(folder / WEIGHTS)
    atomic_write_bytes(folder / CONFIG, dump_task_config(config))
    meta = {"format_version": 1, "lstmkit_version": lstmkit.__version__, "task": "seq2seq",
            "max_output_length": max_length, "data_name": config.data.name}
    atomic_write_bytes(folder / META, json.dumps(meta, indent=2).encode())
    vocab = {"source": source_vocab.to_dict(), "target": target_vocab.to_dict()}
    atomic_write_bytes(folder / VOCAB, json.dumps(vocab, ensure_ascii=False, indent=1).encode())
    return folder


@dataclass
class Translation:
    """One decoded input: the output text, its tokens, the source tokens and the attention (T, S)."""

    text: str
    source_tokens: list[str]
    output_tokens: list[str]
    attention: np.ndarray

    def attention_table(self) -> str:
        """The attention as text: one row per output token, one column per source token (percent)."""
        source = [t if t.strip() else "_" for t in self.source_tokens]  # show spaces
        width = max([len(t) for t in source] + [3])
        head = " " * 8 + " ".join(t.rjust(width) for t in source)
        rows = [head]
        for token, weights in zip(self.output_tokens, self.attention):
            rows.append(token[:7].ljust(8) + " ".join(f"{100 * w:.0f}".rjust(width) for w in weights))
        return "\n".join(rows)


class Translator:
    """A trained seq2seq model folder, ready to decode text."""

    def __init__(self, model: Seq2Seq, config: Seq2SeqConfig, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 max_length: int) -> None:
        self.model, self.config = model.eval(), config
        self.source_vocab, self.target_vocab, self.max_length = source_vocab, target_vocab, max_length

    @classmethod
    def load(cls, folder: str | Path) -> Translator:
        """Load a model folder written by ``run``; never unpickles."""
        import json

        folder = Path(folder)
        if not (folder / VOCAB).is_file():
            raise ModelFolderError(f"model folder {folder}: missing {VOCAB} (expected a seq2seq model folder "
                                   "written by lstmkit train with [model] task = \"seq2seq\")")
        try:
            vocab = json.loads((folder / VOCAB).read_text(encoding="utf-8"))
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            source_vocab, target_vocab = Vocabulary.from_dict(vocab["source"]), Vocabulary.from_dict(vocab["target"])
            config = load_config(folder / CONFIG)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFolderError(f"model folder {folder}: cannot be read ({exc})") from None
        model = build_model(config.model, len(source_vocab), len(target_vocab))
        try:
            model.load_state_dict(load_file(str(folder / WEIGHTS)))
        except (SafetensorError, OSError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelFolderError(f"model folder {folder}: {WEIGHTS} is missing or does not match {CONFIG} "
                                   f"({first})") from None
        return cls(model, config, source_vocab, target_vocab, int(meta["max_output_length"]))

    def translate(self, text: str, beam: int = 1) -> Translation:
        """Decode ``text``: greedy with ``beam=1``, else beam search with ``beam`` hypotheses."""
        ids = self.source_vocab.encode(text)
        if not ids:
            raise DataError("translate: expected a non-empty input text, got none")
        src = torch.tensor([ids], dtype=torch.long)
        if beam == 1:
            out, attention = self.model.greedy(src, [len(ids)], self.max_length)
            out_ids, attention = out[0].tolist(), attention[0]
            cut = out_ids.index(EOS) + 1 if EOS in out_ids else len(out_ids)
            out_ids, attention = out_ids[:cut], attention[:cut]
        else:
            ((out_ids, attention),) = self.model.beam_search(src, [len(ids)], beam, self.max_length)
        tokens = [self.target_vocab.itos[i] for i in out_ids]  # one per attention row
        return Translation(self.target_vocab.decode(out_ids), _tokens(text, self.source_vocab), tokens,
                           attention.numpy())


def summary(metrics: dict[str, Any]) -> str:
    return (f"test_exact_match {metrics['test_exact_match']:.4f}\n"
            f"test_token_accuracy {metrics['test_token_accuracy']:.4f}\n"
            f"test_attention_monotonic {metrics['test_attention_monotonic']:.4f}\n"
            f"train_seconds {metrics['train_seconds']:.1f} ({metrics['epochs_run']} epochs)")
