r"""The next-symbols model's graphs: one-hot symbols in, at every step the probability of each symbol next.

Ports, as ``SequenceTask.schema`` declares them: ``sequences`` float32 (N, L, K) (the standardizer, if the
model has one, folded in front) and ``lengths`` int64 (N,) -> ``values`` float32 (N, L, K),
:math:`\sigma(W h_t + b)` after every step. The model is causal, so it always has a step graph as well:
``sequences`` (N, L, K), ``lengths``, ``h0``, ``c0`` -> ``values``, ``h_n``, ``c_n``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.export.common import (
    declared_schema,
    dense_head,
    garbage_values,
    graph_meta,
    model_proto,
    port_info,
    standardized,
    state_ports,
    verified_set,
)
from lstmkit.export.errors import ExportError
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.lstm_graph import lstm_refusals, lstm_stack
from lstmkit.export.parity import Probe
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter
from lstmkit.export.verify import standardize, verification_inputs
from lstmkit.tasks.schema import Port

__all__ = ["export_next_symbols", "next_symbols_graph"]


def _check_exportable(model: LoadedModel) -> None:
    from lstmkit.models.next_symbols import NextSymbolModel
    from lstmkit.nn import LSTM

    if type(model.module) is not NextSymbolModel:
        raise ExportError(f"export: [model] task = 'next-symbols': expected a NextSymbolModel, got "
                          f"{type(model.module).__name__}")
    refusals = [f"module {name or 'model'} of type {type(sub).__name__}"
                for name, sub in model.module.named_modules() if type(sub) not in (NextSymbolModel, LSTM, nn.Linear)]
    refusals += lstm_refusals(model.module.lstm)
    if refusals:
        raise ExportError("export: cannot export to ONNX: unsupported " + "; ".join(refusals))


def next_symbols_graph(model: LoadedModel, step: bool) -> Any:
    """The predict graph, or with ``step`` the step graph, as a checked ``ModelProto``."""
    from onnx import helper

    module = model.module
    lstm = module.lstm
    schema = declared_schema(model)
    sequences = Port("sequences", "float32", ("N", "L", module.input_size), schema.inputs[0].description)
    inputs = [sequences, Port("lengths", "int64", ("N",), "the real steps of each zero-padded sequence")]
    outputs = [schema.outputs[0]]
    if step:
        state_in, state_out = state_ports(lstm)
        inputs, outputs = inputs + state_in, outputs + state_out
    g = GraphBuilder()
    x = g.op("Transpose", [standardized(g, "sequences", model.standardizer)], perm=[1, 0, 2])  # (L, N, K)
    sequence, final_h, final_c = lstm_stack(g, lstm, x, g.op("Cast", ["lengths"], to=6),
                                            ("h0", "c0") if step else None)
    logits = dense_head(g, module.head, g.op("Transpose", [sequence], perm=[1, 0, 2]), rank=3)  # (N, L, K)
    g.op("Sigmoid", [logits], outputs=["values"])
    if step:
        g.op("Concat", final_h, outputs=["h_n"], axis=0)
        g.op("Concat", final_c, outputs=["c_n"], axis=0)
    kind = "step" if step else "predict"
    graph = helper.make_graph(g.nodes, f"lstmkit_next_symbols_{kind}", [port_info(p) for p in inputs],
                              [port_info(p) for p in outputs], g.initializers)
    meta = graph_meta(model, kind, inputs, outputs, lstm, None, standardizer_in_graph=model.standardizer is not None)
    return model_proto(graph, meta)


@register_exporter("next-symbols")
def export_next_symbols(request: ExportRequest) -> GraphSet:
    """The next-symbols predict graph and (with ``request.step``) its step graph, verified."""
    from lstmkit.artifacts.model_folder import load_model

    model = load_model(request.folder)
    _check_exportable(model)
    module = model.module.eval()
    rng = np.random.default_rng(0)
    x = verification_inputs(model, request.samples, rng)

    @torch.no_grad()
    def expected(raw: np.ndarray) -> np.ndarray:
        return torch.sigmoid(module(standardize(model, raw))).numpy()

    probe = Probe(x=x, feeds=lambda seq, lengths: {"sequences": seq, "lengths": lengths.astype(np.int64)},
                  outputs=["values"], expected=expected, garbage=garbage_values, per_step=True)
    return verified_set(request, lambda step: next_symbols_graph(model, step), lambda per_step: probe, module.lstm,
                        lambda raw: standardize(model, raw), rng, None)
