r"""The frames model's graph: input frames in, the forecast frames out, the whole rollout in one ONNX file.

``NAME.onnx`` (role ``predict``)
    inputs ``frames`` float32 (N, L, C, H, W), values in 0..1 (H = W = the recipe's ``frame_size``), and
    ``lengths`` int64 (N,), each in 1..L (frames past a sequence's length are ignored, whatever they hold);
    output ``predicted`` float32 (N, K, C, H, W) in 0..1, K = the recipe's ``output_frames`` (the
    metadata's ``output_frames``). It is ``lstmkit.load(folder).predict(frames)``, with lengths.

Inside, as ``lstmkit.models.frame_forecaster.ConvLSTMForecaster`` computes:

- the frames are cut into ``patch`` x ``patch`` patches stacked as channels (``pixel_unshuffle``: Reshape
  and Transpose);
- the encoder ConvLSTM is one ``Scan`` over time whose body is, for each layer, one ``Conv`` of the stacked
  channels :math:`[x_t, h_{t-1}]` and the gate equations (``lstmkit.nn.ConvLSTMCell``)

  .. math::
      i, f, o = \sigma(\cdot),\ g = \tanh(\cdot),\ c_t = f \odot c_{t-1} + i \odot g,\ h_t = o \odot \tanh(c_t);

  a step past a sequence's length keeps its states (``Where``), so the final states are those of each
  sequence's last real frame;
- the forecaster's rollout is a second ``Scan``, of K steps, carrying the ConvLSTM states: the ``pixels`` head
  feeds no input and draws each frame (a 1x1 ``Conv``, ``pixel_shuffle``, sigmoid); the ``warp`` head feeds
  back the previous frame (the last real input frame first) and moves its pixels with a softmax-normalised
  ``warp_kernel`` x ``warp_kernel`` kernel per patch: the k² shifted copies of the frame come from one
  ``Conv`` with one-hot kernels, each weighted by its patch's kernel entry and summed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lstmkit.export.errors import ExportError
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.model_proto import finish_model, tensor_info
from lstmkit.export.registry import ExportRequest, GraphSet, register_exporter
from lstmkit.export.runtime import refuse_disagreement

__all__ = ["export_frames", "frames_graph", "frames_meta"]

# The [model] keys this exporter was written for: a key added later, set to anything but its default, refuses
# to export until it is known here.
_KNOWN_MODEL_KEYS = {"task", "hidden_channels", "kernel_size", "patch", "head", "warp_kernel", "loss"}


class _ScopedBuilder(GraphBuilder):
    """A ``GraphBuilder`` whose names carry a prefix, for a subgraph (names must be unique across scopes)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def _name(self, hint: str) -> str:
        return f"{self.prefix}_{super()._name(hint)}"

    def graph(self, name: str, inputs: list[Any], outputs: list[Any]) -> Any:
        return self.helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _check_exportable(forecaster: Any) -> None:
    from torch import nn

    from lstmkit.models.frame_forecaster import ConvLSTMForecaster
    from lstmkit.nn import ConvLSTM
    from lstmkit.nn.convlstm import ConvLSTMCell

    config = forecaster.config.model
    refusals = [f"[model] {f.name} = {getattr(config, f.name)!r} (an option the ONNX exporter does not know)"
                for f in dataclasses.fields(config)
                if f.name not in _KNOWN_MODEL_KEYS and getattr(config, f.name) != _default(f)]
    known = (ConvLSTMForecaster, ConvLSTM, ConvLSTMCell, nn.ModuleList, nn.Conv2d)
    refusals += [f"module {name or 'model'} of type {type(sub).__name__}"
                 for name, sub in forecaster.model.named_modules() if type(sub) not in known]
    if refusals:
        raise ExportError("export: cannot export to ONNX: unsupported " + "; ".join(refusals))


def frames_meta(forecaster: Any) -> dict[str, Any]:
    """The ``lstmkit`` metadata of the frames graph."""
    d, model = forecaster.config.data, forecaster.model
    return {"graph": "predict", "task": "frames", "channels": model.channels, "frame_size": d.frame_size,
            "input_frames": d.input_frames, "output_frames": d.output_frames, "patch": model.patch,
            "head": model.head_kind, "hidden_channels": list(model.encoder.layer_channels)}


def _unshuffle(g: GraphBuilder, frames: str, channels: int, size: int, patch: int, lead: list[int]) -> str:
    """``pixel_unshuffle`` of (*lead, C, H, W) -> (*lead, C p², H / p, W / p); ``lead`` holds 0s (kept dims)."""
    cells = size // patch
    x = g.op("Reshape", [frames, g.ints([*lead, channels, cells, patch, cells, patch])])
    k = len(lead)
    x = g.op("Transpose", [x], perm=[*range(k), k, k + 2, k + 4, k + 1, k + 3])  # (*lead, C, p, p, h, w)
    return g.op("Reshape", [x, g.ints([*lead, channels * patch * patch, cells, cells])])


def _shuffle(g: GraphBuilder, x: str, channels: int, size: int, patch: int) -> str:
    """``pixel_shuffle`` of (N, C p², h, w) -> (N, C, H, W)."""
    cells = size // patch
    x = g.op("Reshape", [x, g.ints([0, channels, patch, patch, cells, cells])])
    x = g.op("Transpose", [x], perm=[0, 1, 4, 2, 5, 3])  # (N, C, h, p, w, p)
    return g.op("Reshape", [x, g.ints([0, channels, size, size])])


def _convlstm_step(g: GraphBuilder, convlstm: Any, x: str, states: list[str], keep: str | None) -> list[str]:
    """One time step of every layer of ``convlstm`` on ``x`` (N, C_in, h, w); ``states`` are
    [h_0, c_0, h_1, c_1, ...]; with ``keep`` (bool (N, 1, 1, 1)) a row where it is False keeps its states."""
    out = []
    for k, cell in enumerate(convlstm.cells):
        h, c = states[2 * k], states[2 * k + 1]
        inputs = [g.op("Concat", [x, h], axis=1), g.const(_array(cell.weight), f"l{k}_weight")]
        if cell.bias is not None:
            inputs.append(g.const(_array(cell.bias), f"l{k}_bias"))
        kh, kw = cell.kernel_size
        gates = g.op("Conv", inputs, kernel_shape=[kh, kw], pads=[kh // 2, kw // 2, kh // 2, kw // 2])
        width = cell.hidden_channels
        pre_i, pre_f, pre_g, pre_o = g.op("Split", [gates, g.ints([width] * 4)], outputs=4, axis=1)
        if cell.peephole:
            pre_i = g.op("Add", [pre_i, g.op("Mul", [g.const(_array(cell.weight_ci), f"l{k}_ci"), c])])
            pre_f = g.op("Add", [pre_f, g.op("Mul", [g.const(_array(cell.weight_cf), f"l{k}_cf"), c])])
        c_next = g.op("Add", [g.op("Mul", [g.op("Sigmoid", [pre_f]), c]),
                              g.op("Mul", [g.op("Sigmoid", [pre_i]), g.op("Tanh", [pre_g])])])
        if cell.peephole:
            pre_o = g.op("Add", [pre_o, g.op("Mul", [g.const(_array(cell.weight_co), f"l{k}_co"), c_next])])
        h_next = g.op("Mul", [g.op("Sigmoid", [pre_o]), g.op("Tanh", [c_next])])
        if keep is not None:
            h_next, c_next = g.op("Where", [keep, h_next, h]), g.op("Where", [keep, c_next, c])
        out += [h_next, c_next]
        x = h_next
    return out


def _state_infos(prefix: str, convlstm: Any, cells: int) -> list[Any]:
    return [tensor_info(f"{prefix}_{kind}{k}", "float", ["N", channels, cells, cells])
            for k, channels in enumerate(convlstm.layer_channels) for kind in ("h", "c")]


def _encoder_scan(g: GraphBuilder, model: Any, patches: str, keep: str, zeros: list[str], cells: int) -> list[str]:
    """The encoder ConvLSTM as one ``Scan`` over time-major ``patches`` (L, N, C p², h, w) and ``keep`` (L, N);
    returns the final [h_0, c_0, ...]."""
    body = _ScopedBuilder("enc")
    states_in = _state_infos("enc_in", model.encoder, cells)
    x_info = tensor_info("enc_x", "float", ["N", model.encoder.input_channels, cells, cells])
    keep_info = tensor_info("enc_keep", "bool", ["N"])
    keep_rows = body.op("Reshape", ["enc_keep", body.ints([-1, 1, 1, 1])])
    new = _convlstm_step(body, model.encoder, "enc_x", [i.name for i in states_in], keep_rows)
    states_out = _state_infos("enc_out", model.encoder, cells)
    for name, info in zip(new, states_out):
        body.op("Identity", [name], outputs=[info.name])
    graph = body.graph("encoder_step", [*states_in, x_info, keep_info], states_out)
    return g.op("Scan", [*zeros, patches, keep], outputs=len(zeros), body=graph, num_scan_inputs=2)


def _warp(g: GraphBuilder, frame: str, kernels: str, channels: int, size: int, patch: int, k: int) -> str:
    r"""``frame_forecaster.warp``: each pixel of ``frame`` (N, C, H, W) replaced by its k x k neighbourhood
    weighted by its patch's kernel (``kernels`` (N, k², h, w)): :math:`\sum_\delta k(\delta) x(p + \delta)`."""
    cells = size // patch
    one_hot = np.eye(k * k, dtype=np.float32).reshape(k * k, 1, k, k)  # entry i*k+j picks offset (i-r, j-r)
    single = g.op("Reshape", [frame, g.ints([-1, 1, size, size])])  # (N C, 1, H, W)
    shifted = g.op("Conv", [single, g.const(one_hot, "shifts")], kernel_shape=[k, k], pads=[k // 2] * 4)
    shifted = g.op("Reshape", [shifted, g.ints([-1, channels, k * k, size, size])])  # (N, C, k², H, W)
    per_pixel = g.op("Reshape", [kernels, g.ints([0, k * k, cells, 1, cells, 1])])
    per_pixel = g.op("Expand", [per_pixel, g.ints([1, 1, 1, patch, 1, patch])])  # (N, k², h, p, w, p)
    per_pixel = g.op("Reshape", [per_pixel, g.ints([0, 1, k * k, size, size])])  # (N, 1, k², H, W)
    return g.op("ReduceSum", [g.op("Mul", [shifted, per_pixel]), g.ints([2])], keepdims=0)  # (N, C, H, W)


def _rollout_scan(g: GraphBuilder, model: Any, future: int, states: list[str], last: str, size: int) -> str:
    """The forecaster's ``future`` steps as one ``Scan`` (over ``future`` placeholder steps) carrying the states
    and the previous frame; returns the frames (future, N, C, H, W). (A ``Scan``, not a ``Loop``:
    ``onnx.reference`` concatenates a ``Loop``'s scan outputs where ONNX Runtime stacks them.)"""
    cells = size // model.patch
    channels, patch = model.channels, model.patch
    body = _ScopedBuilder("roll")
    states_in = _state_infos("roll_in", model.forecaster, cells)
    frame_in = tensor_info("roll_frame_in", "float", ["N", channels, size, size])
    if model.head_kind == "warp":
        x = _unshuffle(body, frame_in.name, channels, size, patch, [0])
    else:  # the forecaster has no input (Shi et al.): zeros (N, 1, h, w)
        batch = body.op("Shape", [frame_in.name], start=0, end=1)
        x = body.op("ConstantOfShape", [body.op("Concat", [batch, body.ints([1, cells, cells])], axis=0)])
    new = _convlstm_step(body, model.forecaster, x, [i.name for i in states_in], None)
    head = [body.const(_array(model.head.weight), "head_weight"), body.const(_array(model.head.bias), "head_bias")]
    logits = body.op("Conv", [new[-2], *head], kernel_shape=[1, 1])
    if model.head_kind == "warp":
        kernels = body.op("Softmax", [logits], axis=1)  # (N, k², h, w): each patch's kernel sums to 1
        frame = _warp(body, frame_in.name, kernels, channels, size, patch, model.warp_kernel)
    else:
        frame = body.op("Sigmoid", [_shuffle(body, logits, channels, size, patch)])
    states_out = _state_infos("roll_out", model.forecaster, cells)
    for name, info in zip(new, states_out):
        body.op("Identity", [name], outputs=[info.name])
    body.op("Identity", [frame], outputs=["roll_frame_out"])
    body.op("Identity", [frame], outputs=["roll_frame_scan"])
    frame_dims = ["N", channels, size, size]
    graph = body.graph("forecaster_step", [*states_in, frame_in, tensor_info("roll_tick", "float", [1])],
                       [*states_out, tensor_info("roll_frame_out", "float", frame_dims),
                        tensor_info("roll_frame_scan", "float", frame_dims)])
    ticks = g.const(np.zeros((future, 1), np.float32), "ticks")  # one placeholder per forecast step
    outputs = g.op("Scan", [*states, last, ticks], outputs=len(states) + 2, body=graph, num_scan_inputs=1)
    return outputs[-1]


def frames_graph(forecaster: Any) -> Any:
    """The frames model's predict graph (see the module docstring) as a checked ``onnx.ModelProto``."""
    model = forecaster.model.eval()
    d = forecaster.config.data
    size, channels, patch = d.frame_size, model.channels, model.patch
    cells = size // patch
    g = GraphBuilder()
    patches = _unshuffle(g, "frames", channels, size, patch, [0, 0])  # (N, L, C p², h, w)
    patches = g.op("Transpose", [patches], perm=[1, 0, 2, 3, 4])  # (L, N, C p², h, w)
    real = g.time_mask("lengths", "frames", 1)  # (N, L) bool
    keep = g.op("Transpose", [real], perm=[1, 0])  # (L, N)
    batch = g.op("Shape", ["frames"], start=0, end=1)
    zeros = []
    for channels_k in model.encoder.layer_channels:
        shape = g.op("Concat", [batch, g.ints([channels_k, cells, cells])], axis=0)
        zero = g.op("ConstantOfShape", [shape])  # float32 zeros (N, C_k, h, w)
        zeros += [zero, zero]
    states = _encoder_scan(g, model, patches, keep, zeros, cells)
    # the frame at each length - 1: the steps of `real` counted up to that frame equal the length
    counted = g.op("CumSum", [g.op("Cast", [real], to=7), g.const(1, dtype=np.int64)])  # (N, L)
    at_last = g.op("And", [real, g.op("Equal", [counted, g.op("Unsqueeze", ["lengths", g.ints([1])])])])
    at_last = g.op("Unsqueeze", [at_last, g.ints([2, 3, 4])])  # (N, L, 1, 1, 1)
    last = g.op("ReduceSum", [g.op("Where", [at_last, "frames", g.const(0.0)]), g.ints([1])], keepdims=0)
    frames = _rollout_scan(g, model, d.output_frames, states, last, size)  # (K, N, C, H, W)
    g.op("Transpose", [frames], perm=[1, 0, 2, 3, 4], outputs=["predicted"])
    inputs = [tensor_info("frames", "float", ["N", "L", channels, size, size]), tensor_info("lengths", "int64", ["N"])]
    outputs = [tensor_info("predicted", "float", ["N", d.output_frames, channels, size, size])]
    return finish_model(g, "lstmkit_frames_predict", inputs, outputs, frames_meta(forecaster))


@register_exporter("frames")
def export_frames(request: ExportRequest) -> GraphSet:
    """The frames model's predict graph (encoder and rollout, each a ``Scan``), verified."""
    from lstmkit.export.frames_verify import verify_frames
    from lstmkit.tasks.frames import FrameForecaster

    if request.folder is None:
        raise ExportError("export: a frames model exports from its model folder (give its path)")
    forecaster = FrameForecaster.load(request.folder)
    _check_exportable(forecaster)
    proto = frames_graph(forecaster)
    checks = verify_frames(forecaster, proto, request.samples)
    refuse_disagreement(checks, request.tolerance, request.target)
    return GraphSet({"predict": proto}, checks,
                    streaming_unsupported="a frames model forecasts whole sequences; it has no streaming step graph")
