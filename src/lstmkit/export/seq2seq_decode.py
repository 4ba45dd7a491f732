"""Greedy and beam-search decoding over an exported seq2seq model, with numpy and ONNX Runtime only.

This module imports nothing from lstmkit (only ``json``, ``pathlib``, ``numpy`` and ``onnxruntime``): copy it
to translate with an export on a machine without lstmkit. It reads the set that ``lstmkit export`` wrote
for a seq2seq model (``lstmkit.export.seq2seq_graph`` documents the graphs)::

    model.onnx                the encoder: source ids and lengths -> keys, projected, h0, c0
    model.decoder_step.onnx   one decoder step: previous tokens and states -> log-probabilities, next states
    model.vocab.json          the source and target vocabularies

and runs the same decoding as ``lstmkit.load(folder).translate`` (``Seq2Seq.greedy`` and
``Seq2Seq.beam_search``), so it gives the same outputs::

    translator = OnnxTranslator("dates.onnx")
    translator.translate("3 March 2021").text            # '2021-03-03'
    translator.translate("3 March 2021", beam=4).text

Greedy: start from ``<bos>``, a zero attentional state and the encoder's ``h0``, ``c0``; at each step feed
the previous token and the step's ``next_feed``, ``next_h``, ``next_c`` back and take the argmax token, until
``<eos>`` or ``max_output_length`` tokens. Beam search keeps the ``beam`` best hypotheses by summed
log-probability; a hypothesis ending with ``<eos>`` among a step's top ``beam`` candidates is finished, and
the search stops when no live hypothesis beats the best finished one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxTranslation", "OnnxTranslator"]

_STEP_OUTPUTS = ["log_probabilities", "attention", "next_feed", "next_h", "next_c"]


def _session(model: str | bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session of a file name or a serialized model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _meta(encoder: Any, where: str) -> dict[str, Any]:
    """The ``lstmkit`` metadata of an encoder session, checked to be a seq2seq encoder's."""
    meta = json.loads(encoder.get_modelmeta().custom_metadata_map.get("lstmkit", "{}"))
    if meta.get("task") != "seq2seq" or meta.get("graph") != "encoder":
        raise ValueError(f"{where}: expected the encoder file of an exported seq2seq model, got "
                         f"task {meta.get('task')!r}, graph {meta.get('graph')!r}")
    return meta


@dataclass
class OnnxTranslation:
    """One decoded source: the output text, its token ids (with ``<eos>`` unless cut at the maximum length),
    the source tokens and the attention (T, S), one row per output id."""

    text: str
    output_ids: list[int]
    source_tokens: list[str]
    attention: np.ndarray


class OnnxTranslator:
    """An exported seq2seq model (the encoder file ``path`` and the files its metadata names beside it).

    Args:
        path: the encoder file (``lstmkit export``'s ``--out``).
        threads: ONNX Runtime's intra-op threads (0: its default).

    Raises:
        ValueError: ``path`` is not the encoder of an exported seq2seq model.
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        path = Path(path)
        encoder = _session(str(path), threads)
        meta = _meta(encoder, str(path))
        vocab = json.loads(path.with_name(meta["side_files"]["vocab.json"]).read_text(encoding="utf-8"))
        self._start(encoder, _session(str(path.with_name(meta["files"]["decoder_step"])), threads), meta, vocab)

    @classmethod
    def from_bytes(cls, encoder: bytes, decoder_step: bytes, vocab: dict[str, Any], threads: int = 1) -> OnnxTranslator:
        """The translator of graphs held in memory (serialized ``ModelProto``s) and the vocabularies' JSON object."""
        translator = cls.__new__(cls)
        session = _session(encoder, threads)
        translator._start(session, _session(decoder_step, threads), _meta(session, "the encoder graph"), vocab)
        return translator

    def _start(self, encoder: Any, step: Any, meta: dict[str, Any], vocab: dict[str, Any]) -> None:
        self.encoder, self.step, self.meta = encoder, step, meta
        self.tokens = vocab["source"]["tokens"]
        self.source_stoi = {token: index for index, token in enumerate(vocab["source"]["itos"])}
        self.target_itos = list(vocab["target"]["itos"])
        specials = meta["specials"]
        self.pad, self.bos, self.eos, self.unk = specials["pad"], specials["bos"], specials["eos"], specials["unk"]
        self.max_length = int(meta["max_output_length"])
        self.hidden_size = int(meta["hidden_size"])

    # Text <-> ids, as lstmkit.data.tokenizer.Vocabulary does

    def split(self, text: str) -> list[str]:
        """The tokens of ``text``: its characters, or its whitespace-separated words."""
        return list(text) if self.tokens == "char" else text.split()

    def encode(self, text: str) -> list[int]:
        """Source ids of ``text`` (unknown tokens as ``<unk>``)."""
        return [self.source_stoi.get(token, self.unk) for token in self.split(text)]

    def decode(self, ids: list[int]) -> str:
        """The text of target ids, up to ``<eos>``, without ``<pad>`` and ``<bos>``."""
        out = []
        for index in ids:
            if index == self.eos:
                break
            if index not in (self.pad, self.bos):
                out.append(self.target_itos[index] if 0 <= index < len(self.target_itos) else "<unk>")
        return ("" if self.tokens == "char" else " ").join(out)

    # Decoding

    def translate(self, text: str, beam: int = 1) -> OnnxTranslation:
        """Decode ``text``: greedy with ``beam=1``, else beam search with ``beam`` hypotheses."""
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"translate: beam: expected an integer >= 1, got {beam!r}")
        ids = self.encode(text)
        if not ids:
            raise ValueError("translate: expected a non-empty input text, got none")
        out, attention = self.greedy([ids])[0] if beam == 1 else self.beam_search(ids, beam)
        source_tokens = self.split(text)
        return OnnxTranslation(self.decode(out), out, source_tokens, attention)

    def _encode(self, sources: list[list[int]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        lengths = np.array([len(s) for s in sources], dtype=np.int64)
        ids = np.full((len(sources), int(lengths.max())), self.pad, dtype=np.int64)
        for i, source in enumerate(sources):
            ids[i, :len(source)] = source
        keys, projected, h, c = self.encoder.run(["keys", "projected", "h0", "c0"],
                                                 {"source": ids, "lengths": lengths})
        return {"keys": keys, "projected": projected, "lengths": lengths, "h": h, "c": c}, lengths

    def _step(self, tokens: np.ndarray, feed: np.ndarray, state: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.step.run(_STEP_OUTPUTS, {"tokens": tokens, "feed": feed, **state})

    def greedy(self, sources: list[list[int]]) -> list[tuple[list[int], np.ndarray]]:
        """The argmax decoding of each source's ids, batched: (output ids up to ``<eos>``, attention (T, S_n))."""
        state, lengths = self._encode(sources)
        n = len(sources)
        tokens = np.full(n, self.bos, dtype=np.int64)
        feed = np.zeros((n, self.hidden_size), np.float32)
        done = np.zeros(n, dtype=bool)
        out, attention = [], []
        for _ in range(self.max_length):
            log_probs, weights, feed, state["h"], state["c"] = self._step(tokens, feed, state)
            tokens = np.where(done, self.pad, log_probs.argmax(-1)).astype(np.int64)
            out.append(tokens)
            attention.append(np.where(done[:, None], 0.0, weights))
            done |= tokens == self.eos
            if done.all():
                break
        ids, weights = np.stack(out, axis=1), np.stack(attention, axis=1)  # (N, T), (N, T, S)
        results = []
        for row, row_weights, length in zip(ids.tolist(), weights, lengths):
            cut = row.index(self.eos) + 1 if self.eos in row else len(row)
            results.append((row[:cut], row_weights[:cut, :length]))
        return results

    def beam_search(self, source: list[int], beam: int) -> tuple[list[int], np.ndarray]:
        """The most probable output of one source found with ``beam`` hypotheses: (ids, attention (T, S))."""
        encoded, _ = self._encode([source])
        vocab = len(self.target_itos)
        seqs: list[list[int]] = [[]]
        attns: list[list[np.ndarray]] = [[]]
        scores = np.zeros(1, np.float32)
        feed = np.zeros((1, self.hidden_size), np.float32)
        h, c = encoded["h"], encoded["c"]
        tokens = np.full(1, self.bos, dtype=np.int64)
        finished: list[tuple[float, list[int], list[np.ndarray]]] = []
        for _ in range(self.max_length):
            alive = len(seqs)
            state = {name: np.repeat(encoded[name], alive, axis=0) for name in ("keys", "projected", "lengths")}
            log_probs, weights, feed, h, c = self._step(tokens, feed, {**state, "h": h, "c": c})
            candidates = (scores[:, None] + log_probs).ravel()  # (alive * V,)
            order = np.argsort(-candidates, kind="stable")[:min(2 * beam, candidates.size)]
            keep_rows, keep_tokens, keep_scores = [], [], []
            for rank, index in enumerate(order.tolist()):
                row, token = divmod(index, vocab)
                score = float(candidates[index])
                if token == self.eos:
                    if rank < beam:
                        finished.append((score, seqs[row] + [self.eos], attns[row] + [weights[row]]))
                    continue
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(score)
                if len(keep_rows) == beam:
                    break
            if not keep_rows or (finished and max(f[0] for f in finished) >= keep_scores[0]):
                break
            seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tokens)]
            attns = [attns[r] + [weights[r]] for r in keep_rows]
            scores = np.array(keep_scores, np.float32)
            tokens = np.array(keep_tokens, np.int64)
            feed, h, c = feed[keep_rows], h[:, keep_rows], c[:, keep_rows]
        else:
            finished.extend((float(s), q, a) for s, q, a in zip(scores.tolist(), seqs, attns))
        if not finished:  # only when the maximum length cut every hypothesis
            finished.extend((float(s), q, a) for s, q, a in zip(scores.tolist(), seqs, attns))
        _, ids, attention = max(finished, key=lambda f: f[0])
        return ids, np.stack(attention) if attention else np.zeros((0, len(source)), np.float32)

    def describe(self) -> dict[str, Any]:
        """The export's metadata (sizes, special ids, ``max_output_length``, file names)."""
        return dict(self.meta)
