r"""The token models' graphs: text classifier, tagger and char-lm, token ids in.

A text model's schema declares raw texts; a graph cannot split text, so its input is the token ids the
tokenizer gives, and the tokenizer (vocabulary, level, lowercasing: ``lstmkit.data.text.Tokenizer.to_dict``)
is written beside the graph as ``NAME.tokenizer.json``, which ``lstmkit serve`` reads. Ports:

* every predict graph: ``ids`` int64 (N, L) in 0..V-1 (0 is ``<pad>``, 1 ``<unk>``), ``lengths`` int64 (N,);
* ``text-classifier``: -> ``probabilities`` and ``logits`` float32 (N, C). Embeddings, the LSTM stack, and
  Zhou et al.'s attention pooling with the padding masked:

  .. math::
      e_t = w^\top \tanh(h_t) \ (t < \text{length}),\ -\infty \text{ past it}; \quad
      \alpha = \operatorname{softmax}(e); \quad \text{logits} = W \tanh(\textstyle\sum_t \alpha_t h_t) + b

* ``tagger`` and ``char-lm``: -> ``probabilities`` and ``logits`` float32 (N, L, C) at every step (steps past a
  length hold nothing useful);
* their step graph (a unidirectional LSTM: every char-lm, a unidirectional tagger): ``ids`` (N, K),
  ``lengths``, ``h0``, ``c0`` (layers, N, H) -> ``probabilities``, ``logits`` (N, K, C) and ``h_n``, ``c_n``
  after each stream's last real token: what ``generate`` and streaming sessions run, one call per token.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.export.common import (
    declared_schema,
    dense_head,
    graph_meta,
    model_proto,
    port_info,
    state_ports,
    verified_set,
)
from lstmkit.export.errors import ExportError
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.lstm_graph import lstm_refusals, lstm_stack
from lstmkit.export.parity import Probe
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter
from lstmkit.tasks.schema import Port

__all__ = ["TOKENIZER_FILE", "export_text_model", "text_graph"]

TOKENIZER_FILE = "tokenizer.json"
"""The side file of a token model's export: ``NAME.tokenizer.json`` beside ``NAME.onnx``."""


def _check_exportable(model: LoadedModel) -> None:
    from lstmkit.models.text import AttentionTextClassifier, TokenEmbedding, TokenTagger
    from lstmkit.nn import LSTM, AttentionPooling

    task = model.config.model.task
    module = model.module
    expected = AttentionTextClassifier if task == "text-classifier" else TokenTagger
    if type(module) is not expected:
        raise ExportError(f"export: [model] task = {task!r}: expected a {expected.__name__}, got "
                          f"{type(module).__name__}")
    if "tokenizer" not in model.meta:
        raise ExportError(f"export: a {task} model folder without its tokenizer (meta.json \"tokenizer\") cannot "
                          "export: its graph takes token ids")
    known = (AttentionTextClassifier, TokenTagger, TokenEmbedding, LSTM, AttentionPooling, nn.Embedding, nn.Dropout,
             nn.Linear)
    refusals = [f"module {name or 'model'} of type {type(sub).__name__}"
                for name, sub in module.named_modules() if type(sub) not in known]
    refusals += lstm_refusals(module.lstm)
    if refusals:
        raise ExportError("export: cannot export to ONNX: unsupported " + "; ".join(refusals))


def _attention_pooling(g: GraphBuilder, pool: nn.Module, h: str, lengths: str) -> str:
    """``AttentionPooling`` on ``h`` (N, L, F) with the steps past ``lengths`` masked: the pooled (N, F)."""
    real = g.time_mask(lengths, h, 1)  # (N, L) bool
    x = g.op("Where", [g.op("Unsqueeze", [real, g.ints([2])]), h, g.const([0.0])])  # padding zeroed first
    if pool.weight_proj is None:
        keys = g.op("Tanh", [x])  # (N, L, F)
    else:
        keys = g.op("Tanh", [g.op("Add", [g.op("MatMul", [x, g.const(pool.weight_proj.detach().numpy().T, "proj")]),
                                          g.const(pool.bias_proj.detach().numpy(), "proj_bias")])])  # (N, L, A)
    scores = g.op("MatMul", [keys, g.const(pool.weight_score.detach().numpy(), "score")])  # (N, L)
    scores = g.op("Where", [real, scores, g.const([-np.inf])])
    weights = g.op("Softmax", [scores], axis=1)  # (N, L)
    pooled = g.op("MatMul", [g.op("Unsqueeze", [weights, g.ints([1])]), x])  # (N, 1, F)
    return g.op("Squeeze", [pooled, g.ints([1])])  # (N, F)


def _ports(model: LoadedModel, step: bool) -> tuple[list[Port], list[Port]]:
    module = model.module
    per_step = model.config.model.task != "text-classifier"
    (declared,) = declared_schema(model).outputs  # the class probabilities, their shape as the task declares it
    classes = declared.shape[-1]
    steps = ("N", "L") if per_step else ("N",)
    inputs = [Port("ids", "int64", ("N", "L"), "token ids from the tokenizer beside the graph (0 = <pad>)"),
              Port("lengths", "int64", ("N",), "the real tokens of each zero-padded row, each in 1..L")]
    outputs = [Port("probabilities", "float32", (*steps, classes), declared.description),
               Port("logits", "float32", (*steps, classes), "the scores before the softmax")]
    if step:
        state_in, state_out = state_ports(module.lstm)
        inputs, outputs = inputs + state_in, outputs + state_out
    return inputs, outputs


def text_graph(model: LoadedModel, step: bool) -> Any:
    """A token model's predict graph, or with ``step`` its step graph, as a checked ``ModelProto``."""
    from onnx import helper

    module = model.module
    lstm = module.lstm
    inputs, outputs = _ports(model, step)
    g = GraphBuilder()
    embedding = module.embedding.embedding.weight.detach().cpu().numpy()
    embedded = g.op("Gather", [g.const(embedding, "embedding"), "ids"], axis=0)  # (N, L, E)
    sequence = g.op("Transpose", [embedded], perm=[1, 0, 2])  # (L, N, E)
    sequence_lens = g.op("Cast", ["lengths"], to=6)
    sequence, final_h, final_c = lstm_stack(g, lstm, sequence, sequence_lens, ("h0", "c0") if step else None)
    h = g.op("Transpose", [sequence], perm=[1, 0, 2])  # (N, L, D * H_out), or (N, L, H_out) merged
    if model.config.model.task == "text-classifier":
        logits = dense_head(g, module.head, g.op("Tanh", [_attention_pooling(g, module.attention, h, "lengths")]),
                            rank=2)  # (N, C)
    else:
        logits = dense_head(g, module.head, h, rank=3)  # (N, L, C)
    g.op("Identity", [logits], outputs=["logits"])
    g.op("Softmax", [logits], outputs=["probabilities"], axis=-1)
    if step:
        g.op("Concat", final_h, outputs=["h_n"], axis=0)
        g.op("Concat", final_c, outputs=["c_n"], axis=0)
    kind = "step" if step else "predict"
    graph = helper.make_graph(g.nodes, f"lstmkit_{model.config.model.task.replace('-', '_')}_{kind}",
                              [port_info(p) for p in inputs], [port_info(p) for p in outputs], g.initializers)
    meta = graph_meta(model, kind, inputs, outputs, lstm, _streaming_unsupported(model),
                      vocab_size=module.embedding.vocab_size, tokenizer_file=TOKENIZER_FILE)
    return model_proto(graph, meta)


def _streaming_unsupported(model: LoadedModel) -> str | None:
    if model.config.model.task == "text-classifier":
        return "a text classifier reads whole texts (attention pools over every token)"
    if model.module.lstm.bidirectional:
        return "its LSTM is bidirectional (the reverse direction needs the whole text)"
    return None


def _token_ids(model: LoadedModel, rng: np.random.Generator) -> np.ndarray:
    """Token ids (24, 12) for verification: random ids of the vocabulary, ``<pad>`` excluded."""
    vocab = model.module.embedding.vocab_size
    return rng.integers(1, vocab, size=(24, 12)).astype(np.int64)


def _probe(model: LoadedModel, x: np.ndarray, per_step: bool) -> Probe:
    module = model.module

    @torch.no_grad()
    def expected(ids: np.ndarray) -> np.ndarray:
        logits = module(torch.from_numpy(ids))
        return torch.cat([torch.softmax(logits, -1), logits], -1).numpy()

    vocab = module.embedding.vocab_size
    return Probe(x=x, feeds=lambda ids, lengths: {"ids": ids, "lengths": lengths.astype(np.int64)},
                 outputs=["probabilities", "logits"], expected=expected, per_step=per_step,
                 garbage=lambda shape, rng: rng.integers(0, vocab, size=shape))


@register_exporter("text-classifier", "tagger", "char-lm")
def export_text_model(request: ExportRequest) -> GraphSet:
    """A token model's predict graph, its step graph where it can stream (and ``request.step``), and its
    tokenizer as ``tokenizer.json``; verified on random token ids."""
    from lstmkit.artifacts.model_folder import load_model

    model = load_model(request.folder)
    _check_exportable(model)
    module = model.module.eval()
    per_step = model.config.model.task != "text-classifier"
    rng = np.random.default_rng(0)
    x = _token_ids(model, rng) if request.samples is None else np.asarray(request.samples, dtype=np.int64)
    tokenizer = json.dumps(model.meta["tokenizer"], ensure_ascii=False, indent=1).encode()
    return verified_set(request, lambda step: text_graph(model, step),
                        lambda steps: _probe(model, x, per_step or steps), module.lstm,
                        lambda ids: module.embedding(torch.from_numpy(ids)), rng, _streaming_unsupported(model),
                        side_files={TOKENIZER_FILE: tokenizer})
