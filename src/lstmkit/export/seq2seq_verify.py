"""Verification of the seq2seq graphs against PyTorch before anything is written.

Checks (each the max abs difference of every output involved):

``fixed_length``
    the encoder on a full batch (every source as long as the longest);
``variable_length``
    the encoder on a batch padded with random token ids past random lengths, against each source encoded
    alone in PyTorch (padding must not leak into keys, projections or the decoder's initial states);
``decoder_step``
    the decoder step graph fed one token at a time for ``max_output_length`` steps (at most 24), from the
    ONNX encoder's outputs of the padded batch, carrying its own states, against ``Seq2Seq.step`` fed the
    same tokens (PyTorch's greedy choices): logits, log-probabilities, attention and the next states;
``reference``
    both graphs again in ``onnx.reference`` (the specification's evaluator) on a few full-length sources
    and the first decoder steps.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from lstmkit.data.tokenizer import BOS, PAD
from lstmkit.errors import LstmkitError
from lstmkit.export.errors import ExportError
from lstmkit.export.runtime import max_diff, reference_run
from lstmkit.export.verify import ort_session

__all__ = ["verification_sources", "verify_seq2seq"]

log = logging.getLogger(__name__)

_STEP_OUTPUTS = ["logits", "log_probabilities", "attention", "next_feed", "next_h", "next_c"]
_ENCODER_OUTPUTS = ["keys", "projected", "h0", "c0"]


def verification_sources(translator: Any, samples: np.ndarray | None,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Source ids (N, S) and lengths (N,): ``samples`` (ids, all full length), else the recipe's first test
    sources, else random ones; past each length, random ids (garbage that must not leak)."""
    vocab = len(translator.source_vocab)
    if samples is not None:
        ids = np.asarray(samples)
        if ids.ndim != 2 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 \
                or ids.max() >= vocab:
            raise ExportError(f"export: seq2seq verification samples: expected integer source ids (N, S) in "
                              f"0..{vocab - 1}, got {ids.dtype} {ids.shape}")
        return ids.astype(np.int64), np.full(len(ids), ids.shape[1], dtype=np.int64)
    rows: list[list[int]] = []
    try:
        from lstmkit.tasks.seq2seq import make_pairs

        config = translator.config
        _, _, test = make_pairs(config.data, config.train.seed)
        rows = [translator.source_vocab.encode(source) or [PAD] for source, _ in test[:16]]
    except LstmkitError as exc:
        log.info("export: verifying on random sources (the recipe's pairs did not load: %s)", exc)
    if len(rows) < 2:
        rows = [list(rng.integers(4, max(vocab, 5), size=rng.integers(1, 13))) for _ in range(12)]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = rng.integers(0, vocab, size=(len(rows), int(lengths.max()) + 2))  # 2 steps of padding even at the max
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids.astype(np.int64), lengths


@torch.no_grad()
def _torch_encode(model: Any, ids: np.ndarray, lengths: np.ndarray) -> tuple[Any, ...]:
    keys, mask, projected, (h0, c0) = model.encode(torch.from_numpy(ids), torch.from_numpy(lengths))
    return keys, mask, keys if projected is None else projected, h0, c0


def _encoder_diff(got: list[np.ndarray], want: tuple[Any, ...], lengths: np.ndarray) -> float:
    """Max abs difference of keys and projections over real steps and of the initial states."""
    keys, _, projected, h0, c0 = (t.numpy() if isinstance(t, torch.Tensor) else t for t in want)
    worst = max(max_diff(got[2], h0), max_diff(got[3], c0))
    for i, length in enumerate(lengths):
        worst = max(worst, max_diff(got[0][i, :length], keys[i, :length]),
                    max_diff(got[1][i, :length], projected[i, :length]))
    return worst


@torch.no_grad()
def _decoder_diff(model: Any, run_step: Any, encoded: list[np.ndarray], ids: np.ndarray, lengths: np.ndarray,
                  steps: int) -> float:
    """Steps of the step graph (``run_step(feeds) -> outputs``) against ``Seq2Seq.step``, the same tokens fed."""
    keys, mask, projected, h0, c0 = _torch_encode(model, ids, lengths)
    n = len(ids)
    tokens = torch.full((n,), BOS, dtype=torch.long)
    feed, state = keys.new_zeros(n, model.hidden_size), (h0, c0)
    onnx_keys, onnx_projected, h, c = encoded
    onnx_feed = np.zeros((n, model.hidden_size), np.float32)
    worst = 0.0
    for _ in range(steps):
        logits, feed, state, weights = model.step(tokens, feed, state, keys, mask, projected)
        got = run_step({"tokens": tokens.numpy(), "feed": onnx_feed, "h": h, "c": c, "keys": onnx_keys,
                        "projected": onnx_projected, "lengths": lengths})
        want = [logits, torch.log_softmax(logits, -1), weights, feed, *state]
        worst = max(worst, *(max_diff(a, b.numpy()) for a, b in zip(got, want)))
        _, _, _, onnx_feed, h, c = got
        tokens = logits.argmax(-1)
    return worst


def verify_seq2seq(translator: Any, encoder: Any, step: Any, samples: np.ndarray | None = None,
                   seed: int = 0) -> dict[str, float]:
    """Run the seq2seq graphs in ONNX Runtime (and ``onnx.reference``) against PyTorch; the max abs
    difference of each check (see the module docstring)."""
    model = translator.model.eval()
    rng = np.random.default_rng(seed)
    ids, lengths = verification_sources(translator, samples, rng)
    encoder_session, step_session = ort_session(encoder), ort_session(step)
    full = np.full(len(ids), ids.shape[1], dtype=np.int64)
    checks = {}
    got = encoder_session.run(_ENCODER_OUTPUTS, {"source": ids, "lengths": full})
    checks["fixed_length"] = _encoder_diff(got, _torch_encode(model, ids, full), full)

    encoded = encoder_session.run(_ENCODER_OUTPUTS, {"source": ids, "lengths": lengths})
    alone = 0.0
    for length in np.unique(lengths):  # sources of one length together: no padding, so each as if alone
        rows = np.flatnonzero(lengths == length)
        want = _torch_encode(model, ids[rows, :length], lengths[rows])
        got = [encoded[0][rows], encoded[1][rows], encoded[2][:, rows], encoded[3][:, rows]]
        alone = max(alone, _encoder_diff(got, want, lengths[rows]))
    checks["variable_length"] = alone

    steps = min(translator.max_length, 24)
    checks["decoder_step"] = _decoder_diff(model, lambda feeds: step_session.run(_STEP_OUTPUTS, feeds), encoded, ids,
                                           lengths, steps)

    few, few_lengths = ids[:3], full[:3]
    reference_encoded = reference_run(encoder, _ENCODER_OUTPUTS, {"source": few, "lengths": few_lengths})
    reference = _encoder_diff(reference_encoded, _torch_encode(model, few, few_lengths), few_lengths)
    checks["reference"] = max(reference, _decoder_diff(
        model, lambda feeds: reference_run(step, _STEP_OUTPUTS, feeds), reference_encoded, few, few_lengths,
        min(steps, 3)))
    return checks
