"""Sequence to sequence: train an attentional encoder-decoder on text pairs, evaluate it, translate with it.

The ``seq2seq`` task (``[model] task = "seq2seq"``, e.g. ``lstmkit train configs/dates.toml``): make the pairs
(a generated task under the seed, or the user's TSV), build the vocabularies from the training pairs, train
with teacher forcing in the one training loop (``Seq2SeqObjective``: token cross-entropy; validation by
greedy decoding), keep the epoch with the best validation exact match, then report on the held-out test
pairs:

- ``test_exact_match``: the fraction of outputs equal to the target, greedy decoding;
- ``test_token_accuracy``: the fraction of target tokens (with ``<eos>``) predicted at their position;
- ``test_attention_monotonic``: the fraction of decoder steps whose most-attended source position does
  not move left of the previous step's (1.0 is a perfectly monotonic alignment), and
  ``test_attention_spearman``, the mean rank correlation of decoder step and most-attended position.
  (Dates written day first align non-monotonically with ISO's year-first order by nature.)

The run folder (``lstmkit.runs.folder``) holds ``evaluation.txt`` (examples) and ``attention.png`` (the
attention matrices of a few test examples) beside the files every run has; its ``model/`` adds
``vocab.json`` (both vocabularies, JSON) to the usual files, all listed in the manifest.

``Translator.load(model_dir).translate("3 March 2021")`` decodes one input (greedy, or ``beam=K``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from lstmkit.config import tomllib
from lstmkit.data.pairs import GENERATORS, Pair, read_pairs_tsv
from lstmkit.data.tokenizer import BOS, EOS, PAD, Vocabulary
from lstmkit.errors import ConfigError, DataError, LstmkitError, ModelFolderError
from lstmkit.artifacts.model_folder import VOCAB, load_weights, read_model_folder, write_model_folder
from lstmkit.models.objectives import Objective
from lstmkit.models.seq2seq import Seq2Seq
from lstmkit.tasks import Evaluation, Job, Task, metrics_text, register_task
from lstmkit.tasks.schema import Port, Schema
from lstmkit.tasks.seq2seq_config import Seq2SeqConfig, Seq2SeqDataConfig, Seq2SeqModelConfig, config_from_table

__all__ = ["Seq2SeqConfig", "Seq2SeqDataConfig", "Seq2SeqModelConfig", "load_config", "make_pairs", "run",
           "Seq2SeqTask", "Seq2SeqObjective", "EncodedPairs", "evaluate_pairs", "attention_monotonicity", "attention_spearman", "Translator", "Translation"]

log = logging.getLogger(__name__)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Seq2SeqConfig:
    """A strict ``Seq2SeqConfig`` from a TOML recipe and ``--set`` overrides."""
    return Seq2SeqTask().load_config(path, overrides)


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

    def __len__(self) -> int:
        return len(self.sources)

    def batch(self, index: Iterable[int] | torch.Tensor,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``src`` (N, S), ``lengths`` (N,) on the CPU, ``tgt_in`` (N, T) starting with ``<bos>``, ``tgt_out``
        (N, T); the token ids on ``device``."""
        index = index.tolist() if isinstance(index, torch.Tensor) else list(index)
        sources = [self.sources[i] for i in index]
        targets = [self.targets[i] for i in index]
        lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
        return (_pad(sources).to(device), lengths, _pad([[BOS] + t[:-1] for t in targets]).to(device),
                _pad(targets).to(device))


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


class Seq2SeqObjective(Objective):
    """Teacher-forced token cross-entropy; validation by greedy decoding.

    ``loss = -sum_{n,t} log p(y_{n,t} | y_{n,<t}, x_n) / #tokens`` over the target tokens (with ``<eos>``,
    without padding). Running metric: token accuracy. Validation: exact match and token accuracy of greedy
    outputs (``evaluate_pairs``); the best epoch has the highest validation exact match.
    """

    targets = "pairs"
    monitor = "val_exact_match"

    def __init__(self, teacher_forcing: float, max_length: int) -> None:
        self.teacher_forcing, self.max_length = teacher_forcing, max_length
        self.criterion = nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum")

    def step(self, network: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        src, lengths, tgt_in, tgt_out = batch
        logits, _ = network(src, lengths, tgt_in, teacher_forcing=self.teacher_forcing)  # (N, T, V)
        real = tgt_out != PAD
        count = int(real.sum())
        loss = self.criterion(logits.flatten(0, 1), tgt_out.flatten()) / max(count, 1)
        correct = int(((logits.detach().argmax(-1) == tgt_out) & real).sum())
        return loss, {"tokens": float(count), "correct": float(correct)}

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        return {"token_accuracy": stats.get("correct", 0.0) / max(stats.get("tokens", 0.0), 1.0)}

    def validate(self, module: nn.Module, data: Any, batch_size: int, device: torch.device) -> dict[str, float]:
        outputs, _ = decode_all(module, data, self.max_length, batch_size)
        return evaluate_pairs(outputs, data.targets)

    def higher_is_better(self, metric: str) -> bool:
        return metric.endswith(("accuracy", "exact_match"))


@register_task("seq2seq")
class Seq2SeqTask(Task):
    """Attentional encoder-decoder on text pairs (see the module docstring)."""

    verbs = "lstmkit translate MODEL TEXT"

    def config_from_table(self, table: dict[str, Any], overrides: Iterable[str] = ()) -> Seq2SeqConfig:
        return config_from_table(table, overrides)

    def prepare(self, config: Seq2SeqConfig) -> Job:
        tc, mc = config.train, config.model
        train_pairs, val_pairs, test_pairs = make_pairs(config.data, tc.seed)
        source_vocab = Vocabulary.build((s for s, _ in train_pairs), config.data.tokens)
        target_vocab = Vocabulary.build((t for _, t in train_pairs), config.data.tokens)
        train, val, test = (EncodedPairs.encode(pairs, source_vocab, target_vocab)
                            for pairs in (train_pairs, val_pairs, test_pairs))
        max_length = mc.max_output_length or max(len(t) for t in train.targets) + 5
        log.info("%s: %d train, %d val, %d test pairs; vocabularies %d and %d tokens", config.data.name,
                 len(train_pairs), len(val_pairs), len(test_pairs), len(source_vocab), len(target_vocab))
        model = build_model(mc, len(source_vocab), len(target_vocab))

        def finish(run: Any) -> dict[str, Any]:
            outputs, attentions = decode_all(model, test, max_length)
            report = evaluate_pairs(outputs, test.targets)
            monotonic = [attention_monotonicity(a) for a in attentions]
            spearman = [attention_spearman(a) for a in attentions]
            metrics = {"test_exact_match": report["exact_match"], "test_token_accuracy": report["token_accuracy"],
                       "test_attention_monotonic": float(np.nanmean(monotonic)),
                       "test_attention_spearman": (float(np.nanmean(spearman))
                                                   if not np.all(np.isnan(spearman)) else None),
                       "test_pairs": len(test_pairs)}
            _write_examples(run, test_pairs, outputs, attentions, source_vocab, target_vocab, metrics)
            save_model(run.model, model, config, source_vocab, target_vocab, max_length)
            return metrics

        return Job(config=config, module=model, objective=Seq2SeqObjective(mc.teacher_forcing, max_length),
                   train=_PairBatches(train), val=val, finish=finish)

    def load(self, folder: Path) -> Translator:
        return Translator.load(folder)

    def schema(self, meta: dict[str, Any], config: Seq2SeqConfig) -> Schema:
        return Schema(inputs=(Port("texts", "string", ("N",), f"{config.data.tokens}-level source texts"),),
                      outputs=(Port("texts", "string", ("N",), "decoded target texts (greedy or beam search)"),
                               Port("attention", "float32", ("N", "T", "S"),
                                    "attention of each output token over the source tokens")))

    def evaluate(self, folder: Path, split: str = "test", data: str | None = None, data_dir: Path | None = None,
                 download: bool = True) -> Evaluation:
        """Exact match and token accuracy of greedy decoding on the run's pairs (made again from its seed)."""
        if data is not None or data_dir is not None:
            raise LstmkitError("evaluate: a seq2seq model is judged on the pairs its recipe makes; give no --data "
                               "or --data-dir (translate your own inputs with lstmkit translate)")
        translator = Translator.load(folder)
        config = translator.config
        train_pairs, _, test_pairs = make_pairs(config.data, config.train.seed)
        pairs = test_pairs if split == "test" else train_pairs
        report = translator.evaluate(pairs)
        title = f"{config.data.name} ({split} split, {len(pairs)} pairs)"
        return Evaluation({"data": config.data.name, "split": split, **report}, metrics_text(title, report))

    def summary(self, metrics: dict[str, Any]) -> str:
        return summary(metrics)


class _PairBatches:
    """``EncodedPairs`` as the loop's ``Batches``."""

    targets = "pairs"

    def __init__(self, pairs: EncodedPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, index: torch.Tensor, device: torch.device) -> Any:
        return self.pairs.batch(index, device)


def run(config: Seq2SeqConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out_dir``; returns the final metrics (also in metrics.json)."""
    from lstmkit.runs.train import run_task

    return run_task(config, out_dir, task=Seq2SeqTask()).metrics


def _write_examples(run: Any, pairs: list[Pair], outputs: list[list[int]], attentions: list[np.ndarray],
                    source_vocab: Vocabulary, target_vocab: Vocabulary, metrics: dict[str, Any]) -> None:
    from lstmkit.report.seq_plots import plot_attention

    lines = [f"test exact match {metrics['test_exact_match']:.4f}   token accuracy "
             f"{metrics['test_token_accuracy']:.4f}   attention monotonic {metrics['test_attention_monotonic']:.3f}"
             f"   ({metrics['test_pairs']} pairs)", "", "source\ttarget\toutput"]
    for (source, target), ids in list(zip(pairs, outputs))[:20]:
        lines.append(f"{source}\t{target}\t{target_vocab.decode(ids)}")
    run.evaluation_txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples = []
    for (source, _), ids, attention in list(zip(pairs, outputs, attentions))[:4]:
        out_tokens = [target_vocab.itos[i] for i in ids]  # one label per attention row, specials too
        examples.append((attention, _tokens(source, source_vocab), out_tokens))
    plot_attention(examples, run.attention_png)


def _tokens(text: str, vocab: Vocabulary) -> list[str]:
    from lstmkit.data.tokenizer import tokenize

    return tokenize(text, vocab.tokens) or ["<pad>"]


# --------------------------------------------------------------------------------------------------------
# Model folder and translation

def save_model(folder: Path, model: Seq2Seq, config: Seq2SeqConfig, source_vocab: Vocabulary,
               target_vocab: Vocabulary, max_length: int) -> Path:
    """Write the model folder: weights, config, metadata and both vocabularies, under one manifest."""
    meta = {"task": "seq2seq", "max_output_length": max_length, "data_name": config.data.name}
    vocab = {"source": source_vocab.to_dict(), "target": target_vocab.to_dict()}
    return write_model_folder(folder, model.state_dict(), Seq2SeqTask().dump_config(config), meta,
                              extras={VOCAB: json.dumps(vocab, ensure_ascii=False, indent=1).encode()})


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
        """Load a seq2seq model folder (or the run folder holding it), each file checked against the manifest;
        never unpickles."""
        contents = read_model_folder(folder)
        folder = contents.folder
        if VOCAB not in contents.extras:
            raise ModelFolderError(f"model folder {folder}: missing {VOCAB} (expected a seq2seq model folder "
                                   "written by lstmkit train with [model] task = \"seq2seq\")")
        try:
            vocab = json.loads(contents.extras[VOCAB].decode("utf-8"))
            source_vocab, target_vocab = Vocabulary.from_dict(vocab["source"]), Vocabulary.from_dict(vocab["target"])
            config = config_from_table(tomllib.loads(contents.config_text))
            max_length = int(contents.meta["max_output_length"])
        except (ValueError, KeyError, TypeError, ConfigError, RecursionError) as exc:
            raise ModelFolderError(f"model folder {folder}: cannot be read ({exc})") from None
        model = load_weights(lambda: build_model(config.model, len(source_vocab), len(target_vocab)), contents)
        return cls(model, config, source_vocab, target_vocab, max_length)

    def predict(self, texts: Iterable[str], beam: int = 1) -> list[str]:
        """The decoded text of each input text."""
        return [self.translate(text, beam).text for text in texts]

    def evaluate(self, pairs: Iterable[Pair]) -> dict[str, float]:
        """Exact match and token accuracy of greedy outputs on ``(source, target)`` text pairs."""
        data = EncodedPairs.encode(list(pairs), self.source_vocab, self.target_vocab)
        if not len(data):
            raise DataError("evaluate: expected at least one (source, target) pair, got none")
        outputs, _ = decode_all(self.model, data, self.max_length)
        return evaluate_pairs(outputs, data.targets)

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
