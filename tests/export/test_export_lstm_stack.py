"""``lstm_stack`` alone, on bare ``lstmkit.nn.LSTM`` modules: its contract for every exporter built on it.

Time-major (L, N, F) and int32 lengths in; the top layer's outputs (zero past each length), each layer's
final h and c out, from given initial states, against the module in PyTorch. The same graphs run in ONNX
Runtime and, where it implements the ops used, in ``onnx.reference``.
"""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from lstmkit.export.graph import IR_VERSION, OPSET, GraphBuilder
from lstmkit.export.lstm_graph import lstm_node_is_exact, lstm_refusals, lstm_stack
from lstmkit.export.verify import ort_session
from lstmkit.nn import LSTM

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

INPUT, HIDDEN, LENGTH, BATCH = 3, 5, 7, 6
TOLERANCE = 1e-4

CASES = {
    "vanilla_as_scan": ({}, True),
    "peephole_coupled_bidirectional_two_layers": (
        {"peephole": True, "coupled_gates": True, "bidirectional": True, "num_layers": 2}, False),
    "no_bias_relu_two_layers": ({"bias": False, "cell_activation": "relu", "num_layers": 2}, False),
    "no_bias_layer_norm_bidirectional": ({"bias": False, "layer_norm": True, "bidirectional": True}, False),
    "everything_scan_bidirectional_two_layers": (
        {"layer_norm": True, "peephole": True, "proj_size": 2, "cell_clip": 0.3, "zoneout": (0.3, 0.1),
         "residual": True, "bidirectional": True, "num_layers": 2, "gate_activation": "hard_sigmoid"}, False),
    "proj_sum_merge_bidirectional_two_layers": (
        {"proj_size": 3, "merge_mode": "sum", "bidirectional": True, "num_layers": 2}, False),
    "mean_merge_residual_peephole_bidirectional_three_layers": (
        {"merge_mode": "mean", "residual": True, "peephole": True, "bidirectional": True, "num_layers": 3}, False),
}


def make_lstm(seed=0, **options):
    torch.manual_seed(seed)
    lstm = LSTM(INPUT, HIDDEN, **options).eval()
    with torch.no_grad():  # peepholes start at 0 and layer-norm gains at 1: make them show
        for name, parameter in lstm.named_parameters():
            if name.startswith(("weight_peephole", "ln_")):
                parameter.add_(0.5 * torch.randn_like(parameter))
    return lstm


def stack_model(lstm, scan=False):
    """A graph of ``lstm_stack`` alone: x (L, N, F), lengths (N,) int64, h0, c0 in; y, h_n, c_n out."""
    g = GraphBuilder()
    rows = lstm.num_layers * lstm.num_directions
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["L", "N", INPUT]),
              helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"]),
              helper.make_tensor_value_info("h0", TensorProto.FLOAT, [rows, "N", lstm.output_size]),
              helper.make_tensor_value_info("c0", TensorProto.FLOAT, [rows, "N", HIDDEN])]
    sequence_lens = g.op("Cast", ["lengths"], to=TensorProto.INT32)
    y, final_h, final_c = lstm_stack(g, lstm, "x", sequence_lens, ("h0", "c0"), scan=scan)
    g.op("Identity", [y], outputs=["y"])
    g.op("Concat", final_h, outputs=["h_n"], axis=0)
    g.op("Concat", final_c, outputs=["c_n"], axis=0)
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["A", "B", "C"]) for name in ("y", "h_n", "c_n")]
    proto = helper.make_model(helper.make_graph(g.nodes, "stack", inputs, outputs, g.initializers),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def feeds(lstm, seed=1):
    """A batch padded with 1e3 noise past random lengths (the full length among them), random initial states."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(LENGTH, BATCH, INPUT)).astype(np.float32)
    lengths = rng.integers(1, LENGTH + 1, size=BATCH)
    lengths[0] = LENGTH
    for n, steps in enumerate(lengths):
        x[steps:, n] = rng.normal(0.0, 1e3, size=x[steps:, n].shape)
    rows = lstm.num_layers * lstm.num_directions
    h0 = rng.normal(size=(rows, BATCH, lstm.output_size)).astype(np.float32)
    c0 = rng.normal(size=(rows, BATCH, HIDDEN)).astype(np.float32)
    return {"x": x, "lengths": lengths.astype(np.int64), "h0": h0, "c0": c0}


@torch.no_grad()
def expected(lstm, f):
    y, (h_n, c_n) = lstm(torch.from_numpy(f["x"]), (torch.from_numpy(f["h0"]), torch.from_numpy(f["c0"])),
                         lengths=torch.from_numpy(f["lengths"]))
    return y.numpy(), h_n.numpy(), c_n.numpy()


def assert_matches(got, want):
    for name, a, b in zip(("y", "h_n", "c_n"), got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.parametrize(("options", "scan"), CASES.values(), ids=CASES.keys())
def test_lstm_stack_matches_the_module_with_lengths_and_initial_states(options, scan):
    lstm = make_lstm(**options)
    assert lstm_refusals(lstm) == []
    proto = stack_model(lstm, scan=scan)
    ops = [node.op_type for node in proto.graph.node]
    assert ("LSTM" in ops) == (not scan and lstm_node_is_exact(lstm.options))
    f = feeds(lstm)
    want = expected(lstm, f)
    got = ort_session(proto).run(["y", "h_n", "c_n"], f)
    assert_matches(got, want)
    past_end = np.arange(LENGTH)[:, None] >= f["lengths"][None, :]  # (L, N)
    assert np.all(got[0][past_end] == 0)  # exactly zero, as the module gives


def test_the_scan_path_equals_the_lstm_node_where_both_apply():
    lstm = make_lstm(peephole=True, coupled_gates=True, bidirectional=True, num_layers=2,
                     gate_activation="hard_sigmoid", cell_activation="elu", hidden_activation="softsign")
    f = feeds(lstm, seed=3)
    node = ort_session(stack_model(lstm)).run(["y", "h_n", "c_n"], f)
    scan = ort_session(stack_model(lstm, scan=True)).run(["y", "h_n", "c_n"], f)
    assert_matches(scan, node)
    assert_matches(scan, expected(lstm, f))


REFERENCE_CASES = ["vanilla_as_scan", "no_bias_layer_norm_bidirectional", "everything_scan_bidirectional_two_layers",
                   "peephole_coupled_bidirectional_two_layers"]


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_onnx_reference_evaluator_agrees(case):
    """``onnx.reference`` runs the Scan graphs on the padded batch. Its ``LSTM`` ignores ``sequence_lens``
    and ``input_forget`` (onnx 1.23), so a graph with LSTM nodes is not run there."""
    options, scan = CASES[case]
    lstm = make_lstm(**options)
    proto = stack_model(lstm, scan=scan)
    if any(node.op_type == "LSTM" for node in proto.graph.node):
        pytest.skip("onnx.reference's LSTM ignores sequence_lens and input_forget; ONNX Runtime runs it above")
    f = feeds(lstm, seed=2)
    got = ReferenceEvaluator(proto).run(["y", "h_n", "c_n"], f)
    assert_matches(got, expected(lstm, f))
