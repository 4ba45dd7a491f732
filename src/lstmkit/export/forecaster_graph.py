r"""The forecaster's graph: raw recent values in, the next H values on the raw scale out.

Port, as ``SequenceTask.schema`` declares them: ``history`` float32 (N, L, S), the most recent L values of
each of S series (L at least the window W plus the differencing lag d; older values are ignored), ->
``forecast`` float64 (N, H, S). The series scaling of training (``lstmkit.data.windows.SeriesScaler``) is
folded into the graph, in float64 like the library's own ``forecast_path``:

.. math::
    \begin{array}{ll}
        v_t = \log y_t \text{ (with [data] log) else } y_t \\
        u_t = v_t - v_{t-d} \text{ (with [data] difference = d) else } v_t \\
        z_t = (u_t - \mu) / \sigma \quad \text{over the last W steps} \\
        l = \tfrac{1}{m} \textstyle\sum_{t > T - m} z_t \text{ (with [data] level = m) else } 0 \\
        \hat z = \mathrm{network}(z - l) + l \in \mathbb{R}^{H \times S}
            \quad \text{(the network after the model's own standardizer)} \\
        \hat u_h = \hat z_h \sigma + \mu, \qquad
        \hat v_h = \hat v_{h-d} + \hat u_h \ (\hat v_{h-d} = v_{T+h-d} \text{ for } h < d) \\
        \hat y_h = \exp \hat v_h \text{ (with log) else } \hat v_h
    \end{array}

A forecaster cannot stream (its output is a whole horizon from a whole window), so there is no step graph.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from lstmkit.artifacts.model_folder import LoadedModel
from lstmkit.data.windows import SeriesScaler
from lstmkit.errors import LstmkitError
from lstmkit.export.classifier_graph import check_exportable, sequence_network
from lstmkit.export.common import (
    check_tolerance,
    declared_schema,
    graph_meta,
    model_proto,
    port_info,
    standardized,
)
from lstmkit.export.errors import ExportError
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.parity import Probe, max_diff, ort_session, reference_check
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter

__all__ = ["export_forecaster", "forecaster_graph"]

log = logging.getLogger(__name__)

_DOUBLE, _FLOAT = 11, 1  # TensorProto.DOUBLE, FLOAT


def _geometry(model: LoadedModel) -> tuple[SeriesScaler, int, int, int]:
    forecast = model.meta.get("forecast")
    if not isinstance(forecast, dict):
        raise ExportError("export: [model] task = 'forecaster' without the series scaling of a forecasting source "
                          "(meta.json has no 'forecast'); train it on a forecasting source such as airline")
    scaler = SeriesScaler.from_dict(forecast["scaler"])
    return scaler, int(forecast["window"]), int(forecast["horizon"]), len(scaler.mean)


def forecaster_graph(model: LoadedModel) -> Any:
    """The forecaster's graph (see the module docstring), as a checked ``ModelProto``."""
    from onnx import helper

    scaler, window, horizon, series = _geometry(model)
    d = scaler.difference
    schema = declared_schema(model)
    (history,), (forecast,) = schema.inputs, schema.outputs
    g = GraphBuilder()
    v = g.op("Cast", [history.name], to=_DOUBLE)  # (N, L, S)
    if scaler.log:
        v = g.op("Log", [g.op("Add", [v, g.const(scaler.log_offset, "log_offset", np.float64)])
                         if scaler.log_offset else v])
    tail = g.op("Slice", [v, g.ints([-(window + d)]), g.ints([np.iinfo(np.int64).max]), g.ints([1])])  # (N, W + d, S)
    u = tail if not d else g.op("Sub", [g.op("Slice", [tail, g.ints([d]), g.ints([window + d]), g.ints([1])]),
                                        g.op("Slice", [tail, g.ints([0]), g.ints([window]), g.ints([1])])])
    z = g.op("Div", [g.op("Sub", [u, g.const(scaler.mean, "series_mean", np.float64)]),
                     g.const(scaler.std, "series_std", np.float64)])  # (N, W, S)
    if scaler.level:
        recent = g.op("Slice", [z, g.ints([window - scaler.level]), g.ints([window]), g.ints([1])])  # (N, m, S)
        level = g.op("ReduceMean", [recent], axes=[1], keepdims=1)  # (N, 1, S)
        z = g.op("Sub", [z, level])
    x = standardized(g, g.op("Cast", [z], to=_FLOAT), model.standardizer)
    batch = g.op("Shape", [x], start=0, end=1)  # (1,)
    lengths = g.op("Expand", [g.const(window, dtype=np.int64), batch])  # (N,): every window is whole
    outputs, _, _ = sequence_network(g, model.module, x, lengths, None)  # (N, H * S)
    z_hat = g.op("Reshape", [g.op("Cast", [outputs], to=_DOUBLE), g.ints([0, horizon, series])])  # (N, H, S)
    if scaler.level:
        z_hat = g.op("Add", [z_hat, level])
    u_hat = g.op("Add", [g.op("Mul", [z_hat, g.const(scaler.std, "series_std", np.float64)]),
                         g.const(scaler.mean, "series_mean", np.float64)])
    if d:
        levels = [g.op("Slice", [tail, g.ints([window + k]), g.ints([window + k + 1]), g.ints([1])]) for k in range(d)]
        for h in range(horizon):
            step = g.op("Slice", [u_hat, g.ints([h]), g.ints([h + 1]), g.ints([1])])  # (N, 1, S)
            levels.append(g.op("Add", [levels[-d], step]))
        u_hat = g.op("Concat", levels[d:], axis=1)  # (N, H, S)
    y_hat = g.op("Exp", [u_hat]) if scaler.log else u_hat
    if scaler.log and scaler.log_offset:
        y_hat = g.op("Sub", [y_hat, g.const(scaler.log_offset, "log_offset", np.float64)])
    g.op("Identity", [y_hat], outputs=[forecast.name])
    graph = helper.make_graph(g.nodes, "lstmkit_forecaster_predict", [port_info(history)], [port_info(forecast)],
                              g.initializers)
    meta = graph_meta(model, "predict", [history], [forecast], model.module.lstm,
                      "a forecaster answers a whole horizon from a whole window", window=window, horizon=horizon,
                      difference=d, log=scaler.log, log_offset=scaler.log_offset, level=scaler.level,
                      min_history=window + d,
                      series=list(model.meta["forecast"].get("series") or []))
    return model_proto(graph, meta)


def _histories(model: LoadedModel, samples: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Raw histories (N, W + d + 3, S): ``samples``, else the last stretches of the model's own series (when it
    loads without a download), else random walks around the training level."""
    scaler, window, _, series = _geometry(model)
    if samples is not None:
        return np.ascontiguousarray(samples, dtype=np.float32)
    steps = window + scaler.difference + 3
    try:
        from lstmkit.data.forecast_sources import load_config_series, load_config_series_list

        if model.meta["forecast"].get("pooled"):  # a pooled model: the last stretch of each of its series
            found = [s.values[-steps:] for s in load_config_series_list(model.config.data) if len(s.values) >= steps]
            if found:
                return np.stack(found[:8]).astype(np.float32)
        values = load_config_series(model.config.data).values  # (T, S)
        if values.shape[1] == series and len(values) >= steps + 8:
            return np.stack([values[len(values) - steps - k:len(values) - k] for k in range(8)]).astype(np.float32)
    except LstmkitError as exc:
        log.info("export: verifying on random histories (the series did not load: %s)", exc)
    u = scaler.mean + scaler.std * rng.standard_normal((8, steps, series))  # differences (or levels) as trained
    v = np.cumsum(u, axis=1) if scaler.difference else u
    if scaler.log:
        v = v - v.max(axis=1, keepdims=True) + np.log(100.0)  # levels up to 100
        return np.exp(v).astype(np.float32)
    return v.astype(np.float32)


def _forecast_in_torch(model: LoadedModel, history: np.ndarray) -> np.ndarray:
    """What the library forecasts for each raw history (``lstmkit.tasks.forecasting.forecast_paths``)."""
    from lstmkit.tasks.forecasting import forecast_paths

    scaler, window, horizon, _ = _geometry(model)

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        return model.module(model.prepare(x)).numpy()

    return np.stack(forecast_paths(predict, scaler, list(history.astype(np.float64)), horizon, window, horizon))


@register_exporter("forecaster")
def export_forecaster(request: ExportRequest) -> GraphSet:
    """The forecaster's graph, verified: a batch of histories, and the same with garbage in the values older
    than the window (which must not change a forecast), against ``forecast_path`` in PyTorch, within the
    tolerance times the largest forecast's magnitude (when above 1: the forecasts are on the raw scale)."""
    from lstmkit.artifacts.model_folder import load_model

    model = load_model(request.folder)
    check_exportable(model, "forecaster")
    model.module.eval()
    scaler, window, _, _ = _geometry(model)
    rng = np.random.default_rng(0)
    history = _histories(model, request.samples, rng)
    proto = forecaster_graph(model)
    probe = Probe(x=history, feeds=lambda x, lengths: {"history": x}, outputs=["forecast"],
                  expected=lambda x: _forecast_in_torch(model, x), garbage=lambda shape, r: r.uniform(1, 1e3, shape))
    session = ort_session(proto)
    expected = probe.expected(history)
    checks = {"fixed_length": max_diff(session.run(["forecast"], {"history": history})[0], expected)}
    older = history.shape[1] - window - scaler.difference  # values before what the forecast reads
    garbled = history.copy()
    garbled[:, :older] = probe.garbage(garbled[:, :older].shape, rng)
    checks["older_values_ignored"] = max_diff(session.run(["forecast"], {"history": garbled})[0], expected)
    reference = reference_check(proto, probe)
    if reference is not None:
        checks["reference"] = reference
    # Forecasts are on the series' own scale: float32 holds about 7 significant digits, so a forecast of 5,000
    # agrees to about 1e-3. The tolerance is relative to the largest forecast above 1 (absolute below).
    magnitude = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    check_tolerance(checks, request.tolerance * magnitude, request.target)
    return GraphSet({"predict": proto}, checks, streaming_unsupported="a forecaster answers a whole horizon",
                    tolerance_scale=magnitude)
