r"""The seq2seq model's graphs: an encoder graph and a decoder step graph with attention.

Decoding is a loop that the caller runs (greedy or beam search: ``lstmkit.export.seq2seq_decode`` does both
with numpy and ONNX Runtime only); the two graphs are the model's maths:

``NAME.onnx`` (role ``predict``, the *encoder*)
    inputs ``source`` int64 (N, S): source token ids, padded with anything past each length; ``lengths``
    int64 (N,), each in 1..S. Outputs ``keys`` (N, S, H) and ``projected`` (N, S, A): the attention's
    values and the key half of its score (for the dot score ``projected`` is ``keys``); ``h0``, ``c0``
    (num_layers, N, H): the decoder's initial states (the bridge of the encoder's final states).

``NAME.decoder_step.onnx`` (role ``decoder_step``), one target step for every row:
    inputs ``tokens`` int64 (N,) (the previous output token, ``<bos>`` = 1 first), ``feed`` (N, H) (the
    previous attentional state, zeros first), ``h``, ``c`` (num_layers, N, H), and the encoder's ``keys``,
    ``projected`` and ``lengths``; outputs ``logits`` and ``log_probabilities`` (N, V_tgt), ``attention``
    (N, S) (zero past each length), ``next_feed``, ``next_h``, ``next_c`` to feed back. It computes

    .. math::
        \begin{array}{ll}
            s_t = \mathrm{LSTM}([E y_{t-1}; \tilde h_{t-1}], s_{t-1}) \\
            \alpha_t = \operatorname{softmax}_{s \le \text{length}}(\mathrm{score}(s_t, k_s)),\quad
            c_t = \sum_s \alpha_{t,s} k_s \\
            \tilde h_t = \tanh(W_c [s_t; c_t] + b_c),\quad \text{logits}_t = W_o \tilde h_t + b_o
        \end{array}

``NAME.vocab.json`` (side file): ``{"source": {"tokens", "itos"}, "target": {...}}``, the vocabularies
(``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3 first), as the model folder's ``vocab.json``.

Each graph's ``lstmkit`` metadata holds what a decoder needs: the special ids, ``max_output_length``,
``tokens`` (``char`` or ``word``), the sizes, and the set's file names.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from lstmkit.data.tokenizer import BOS, EOS, PAD, UNK
from lstmkit.export.errors import ExportError
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.lstm_graph import lstm_refusals, lstm_stack
from lstmkit.export.model_proto import finish_model, tensor_info
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter
from lstmkit.export.runtime import refuse_disagreement

__all__ = ["VOCAB_SIDE_FILE", "decoder_step_graph", "encoder_graph", "export_seq2seq", "seq2seq_meta"]

VOCAB_SIDE_FILE = "vocab.json"

# The [model] keys this exporter was written for: a key added later, set to anything but its default, refuses
# to export until it is known here.
_KNOWN_MODEL_KEYS = {"task", "embedding_size", "hidden_size", "num_layers", "bidirectional", "attention", "dropout",
                     "teacher_forcing", "max_output_length"}


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _linear(g: GraphBuilder, x: str, layer: Any, name: str) -> str:
    """``x @ W^T + b`` of a ``torch.nn.Linear`` on the last axis of ``x`` (any rank)."""
    y = g.op("MatMul", [x, g.const(_array(layer.weight).T, f"{name}_weight_t")])
    return g.op("Add", [y, g.const(_array(layer.bias), f"{name}_bias")]) if layer.bias is not None else y


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _check_exportable(translator: Any) -> None:
    from torch import nn

    from lstmkit.models.seq2seq import Seq2Seq
    from lstmkit.nn import LSTM, SequenceAttention

    config = translator.config.model
    refusals = [f"[model] {f.name} = {getattr(config, f.name)!r} (an option the ONNX exporter does not know)"
                for f in dataclasses.fields(config)
                if f.name not in _KNOWN_MODEL_KEYS and getattr(config, f.name) != _default(f)]
    known = (Seq2Seq, LSTM, SequenceAttention, nn.Embedding, nn.Linear, nn.Identity, nn.Dropout)
    refusals += [f"module {name or 'model'} of type {type(sub).__name__}"
                 for name, sub in translator.model.named_modules() if type(sub) not in known]
    for part in ("encoder", "decoder"):
        refusals += [f"{part} {r}" for r in lstm_refusals(getattr(translator.model, part))]
    if refusals:
        raise ExportError("export: cannot export to ONNX: unsupported " + "; ".join(refusals))


def seq2seq_meta(translator: Any, graph: str) -> dict[str, Any]:
    """The ``lstmkit`` metadata of one of the seq2seq graphs (``graph``: ``encoder`` or ``decoder_step``)."""
    model = translator.model
    return {
        "graph": graph,
        "task": "seq2seq",
        "source_vocab_size": len(translator.source_vocab),
        "target_vocab_size": len(translator.target_vocab),
        "tokens": translator.source_vocab.tokens,
        "specials": {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
        "max_output_length": translator.max_length,
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_size,
        "attention": model.attention.score,
        "data_name": translator.config.data.name,
    }


def encoder_graph(translator: Any) -> Any:
    """The encoder graph (see the module docstring) as a checked ``onnx.ModelProto``."""
    model = translator.model.eval()
    g = GraphBuilder()
    hidden, layers = model.hidden_size, model.num_layers
    embedded = g.op("Gather", [g.const(_array(model.source_embedding.weight), "source_embedding"), "source"])
    sequence = g.op("Transpose", [embedded], perm=[1, 0, 2])  # (S, N, E)
    outputs, final_h, final_c = lstm_stack(g, model.encoder, sequence, g.op("Cast", ["lengths"], to=6))
    outputs = g.op("Transpose", [outputs], perm=[1, 0, 2])  # (N, S, D*H)
    keys = outputs if model.directions == 1 else _linear(g, outputs, model.keys, "keys")  # (N, S, H)
    g.op("Identity", [keys], outputs=["keys"])
    attention = model.attention
    if attention.score == "additive":
        projected = g.op("Add", [g.op("MatMul", [keys, g.const(_array(attention.weight_key).T, "weight_key_t")]),
                                 g.const(_array(attention.bias), "attention_bias")])  # (N, S, A)
    elif attention.score == "general":
        projected = g.op("MatMul", [keys, g.const(_array(attention.weight).T, "attention_weight_t")])  # (N, S, H)
    else:
        projected = keys  # the dot score: q . k_s
    g.op("Identity", [projected], outputs=["projected"])

    def per_layer(states: list[str]) -> str:  # each (D, N, H) -> (L, N, D*H)
        rows = [g.op("Unsqueeze", [g.op("Reshape", [g.op("Transpose", [s], perm=[1, 0, 2]), g.ints([0, -1])]),
                                   g.ints([0])]) for s in states]
        return rows[0] if len(rows) == 1 else g.op("Concat", rows, axis=0)

    bridged = _linear(g, g.op("Concat", [per_layer(final_h), per_layer(final_c)], axis=0), model.bridge,
                      "bridge")  # (2L, N, 2H)
    g.op("Tanh", [g.op("Slice", [bridged, g.ints([0, 0]), g.ints([layers, hidden]), g.ints([0, 2])])],
         outputs=["h0"])
    g.op("Slice", [bridged, g.ints([layers, hidden]), g.ints([2 * layers, 2 * hidden]), g.ints([0, 2])],
         outputs=["c0"])
    size = projected_size(model)
    inputs = [tensor_info("source", "int64", ["N", "S"]), tensor_info("lengths", "int64", ["N"])]
    outputs = [tensor_info("keys", "float", ["N", "S", hidden]), tensor_info("projected", "float", ["N", "S", size]),
               tensor_info("h0", "float", [layers, "N", hidden]), tensor_info("c0", "float", [layers, "N", hidden])]
    return finish_model(g, "lstmkit_seq2seq_encoder", inputs, outputs, seq2seq_meta(translator, "encoder"))


def projected_size(model: Any) -> int:
    """The width of the encoder's ``projected`` output: the additive score's A, else H."""
    attention = model.attention
    return attention.attention_size if attention.score == "additive" else model.hidden_size


def decoder_step_graph(translator: Any) -> Any:
    """The decoder step graph (see the module docstring) as a checked ``onnx.ModelProto``."""
    model = translator.model.eval()
    g = GraphBuilder()
    hidden, layers = model.hidden_size, model.num_layers
    embedded = g.op("Gather", [g.const(_array(model.target_embedding.weight), "target_embedding"), "tokens"])
    x = g.op("Unsqueeze", [g.op("Concat", [embedded, "feed"], axis=1), g.ints([0])])  # (1, N, E+H)
    ones = g.op("Expand", [g.const([1], dtype=np.int32), g.op("Shape", ["tokens"])])  # (N,) one step each
    output, final_h, final_c = lstm_stack(g, model.decoder, x, ones, ("h", "c"))
    query = g.op("Squeeze", [output, g.ints([0])])  # (N, H)
    g.op("Concat", final_h, outputs=["next_h"], axis=0)
    g.op("Concat", final_c, outputs=["next_c"], axis=0)

    attention = model.attention
    if attention.score == "additive":
        query_part = g.op("MatMul", [query, g.const(_array(attention.weight_query).T, "weight_query_t")])  # (N, A)
        energy = g.op("Tanh", [g.op("Add", ["projected", g.op("Unsqueeze", [query_part, g.ints([1])])])])
        scores = g.op("MatMul", [energy, g.const(_array(attention.weight_score), "weight_score")])  # (N, S)
    else:
        scores = g.op("Squeeze", [g.op("MatMul", ["projected", g.op("Unsqueeze", [query, g.ints([2])])]),
                                  g.ints([2])])  # (N, S)
    real = g.time_mask("lengths", "keys", 1)  # (N, S) bool
    weights = g.op("Softmax", [g.op("Where", [real, scores, g.const(-np.inf)])], axis=1)  # (N, S)
    g.op("Identity", [weights], outputs=["attention"])
    values = g.op("Where", [g.op("Unsqueeze", [real, g.ints([2])]), "keys", g.const(0.0)])  # padding never leaks
    context = g.op("Squeeze", [g.op("MatMul", [g.op("Unsqueeze", [weights, g.ints([1])]), values]), g.ints([1])])
    feed = g.op("Tanh", [_linear(g, g.op("Concat", [query, context], axis=1), model.combine, "combine")])
    g.op("Identity", [feed], outputs=["next_feed"])
    logits = _linear(g, feed, model.output, "output")
    g.op("Identity", [logits], outputs=["logits"])
    g.op("LogSoftmax", [logits], outputs=["log_probabilities"], axis=1)

    vocab = model.target_vocab_size
    state = [layers, "N", hidden]
    inputs = [tensor_info("tokens", "int64", ["N"]), tensor_info("feed", "float", ["N", hidden]),
              tensor_info("h", "float", state), tensor_info("c", "float", state),
              tensor_info("keys", "float", ["N", "S", hidden]),
              tensor_info("projected", "float", ["N", "S", projected_size(model)]),
              tensor_info("lengths", "int64", ["N"])]
    outputs = [tensor_info("logits", "float", ["N", vocab]), tensor_info("log_probabilities", "float", ["N", vocab]),
               tensor_info("attention", "float", ["N", "S"]), tensor_info("next_feed", "float", ["N", hidden]),
               tensor_info("next_h", "float", state), tensor_info("next_c", "float", state)]
    return finish_model(g, "lstmkit_seq2seq_decoder_step", inputs, outputs, seq2seq_meta(translator, "decoder_step"))


@register_exporter("seq2seq")
def export_seq2seq(request: ExportRequest) -> GraphSet:
    """The encoder (role ``predict``) and decoder step (role ``decoder_step``) graphs, verified, and the
    vocabularies as the side file ``vocab.json``."""
    from lstmkit.export.seq2seq_verify import verify_seq2seq
    from lstmkit.tasks.seq2seq import Translator

    if request.folder is None:
        raise ExportError("export: a seq2seq model exports from its model folder (give its path)")
    translator = Translator.load(request.folder)
    _check_exportable(translator)
    encoder, step = encoder_graph(translator), decoder_step_graph(translator)
    checks = verify_seq2seq(translator, encoder, step, request.samples)
    refuse_disagreement(checks, request.tolerance, request.target)
    vocab = {"source": translator.source_vocab.to_dict(), "target": translator.target_vocab.to_dict()}
    return GraphSet({"predict": encoder, "decoder_step": step}, checks,
                    side_files={VOCAB_SIDE_FILE: json.dumps(vocab, ensure_ascii=False, indent=1).encode("utf-8")},
                    streaming_unsupported="a seq2seq model decodes with its decoder step graph; it has no "
                                          "streaming step graph")
