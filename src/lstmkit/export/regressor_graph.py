"""The regressor's graphs: raw sequences (N, L, F) and lengths in, values (N, K) out.

The regressor is the classifier's network with K real-valued outputs, so its graph is the classifier's
(``classifier_graph.sequence_outputs``: standardizer folded in, conv front end, LSTM stack, readout, head)
without the softmax. Ports, as ``SequenceTask.schema`` declares them:

* predict graph: ``sequences`` float32 (N, L, F), ``lengths`` int64 (N,) -> ``values`` float32 (N, K);
* step graph (a unidirectional model without conv front end, readout ``last``): ``sequences`` (N, L, F),
  ``lengths``, ``h0``, ``c0`` (layers, N, H) -> ``values`` (N, L, K) after every step, ``h_n``, ``c_n``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.export.classifier_graph import check_exportable, sequence_outputs
from lstmkit.export.common import (
    declared_schema,
    garbage_values,
    graph_meta,
    model_proto,
    port_info,
    state_ports,
    verified_set,
)
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.parity import Probe
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter
from lstmkit.export.verify import standardize, verification_inputs
from lstmkit.tasks.schema import Port

__all__ = ["export_regressor", "regressor_graph"]


def regressor_graph(model: LoadedModel, step: bool) -> Any:
    """The regressor's predict graph, or with ``step`` its step graph, as a checked ``ModelProto``."""
    from onnx import helper

    module = model.module
    lstm = module.lstm
    schema = declared_schema(model)
    (values,) = schema.outputs
    g = GraphBuilder()
    inputs, outputs, final_h, final_c = sequence_outputs(g, model, step, input_name="sequences")
    g.op("Identity", [outputs], outputs=["values"])
    if step:
        values = Port("values", "float32", ("N", "L", values.shape[-1]), "predicted values after every step")
    ports = [values]
    if step:
        _, state_out = state_ports(lstm)
        g.op("Concat", final_h, outputs=["h_n"], axis=0)
        g.op("Concat", final_c, outputs=["c_n"], axis=0)
        ports += state_out
    graph = helper.make_graph(g.nodes, f"lstmkit_regressor_{'step' if step else 'predict'}", inputs,
                              [port_info(p) for p in ports], g.initializers)
    meta = graph_meta(model, "step" if step else "predict", inputs, ports, lstm,
                      module.streaming_unsupported_reason(), standardizer_in_graph=model.standardizer is not None,
                      min_length=module.min_length())
    return model_proto(graph, meta)


def _probe(model: LoadedModel, x: np.ndarray, per_step: bool) -> Probe:
    module = model.module

    @torch.no_grad()
    def expected(raw: np.ndarray) -> np.ndarray:
        inputs = standardize(model, raw)
        return (module.forward_steps(inputs) if per_step else module(inputs)).numpy()

    return Probe(x=x, feeds=lambda seq, lengths: {"sequences": seq, "lengths": lengths.astype(np.int64)},
                 outputs=["values"], expected=expected, garbage=garbage_values, per_step=per_step,
                 min_length=module.min_length())


@register_exporter("regressor")
def export_regressor(request: ExportRequest) -> GraphSet:
    """The regressor's predict graph and, where it can stream and ``request.step``, its step graph, verified."""
    from lstmkit.artifacts.model_folder import load_model

    model = load_model(request.folder)
    check_exportable(model, "regressor")
    module = model.module.eval()
    rng = np.random.default_rng(0)
    x = verification_inputs(model, request.samples, rng)
    return verified_set(request, lambda step: regressor_graph(model, step), lambda per_step: _probe(model, x, per_step),
                        module.lstm, lambda raw: standardize(model, raw), rng, module.streaming_unsupported_reason())
