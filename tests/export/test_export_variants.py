"""Every LSTM variant exports: the matrix of issue 19.

Each variant alone and two combinations, each unidirectional, bidirectional and with 2 layers, go through
``build_verified_graphs`` (what ``lstmkit export`` runs before it writes anything): ONNX Runtime against
PyTorch within 1e-4 on a full batch, on a batch padded with 1e3 noise past random lengths (against each
sequence run alone) and, for every unidirectional model, the step graph fed in chunks. The matrix also pins
which layers are standard ``LSTM`` nodes and which are ``Scan`` loops.
"""

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from lstmkit.artifacts.model_folder import load_model, save_model
from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.export import TOLERANCE, build_verified_graphs, standardize
from lstmkit.export.lstm_graph import lstm_node_is_exact
from lstmkit.models import InputSpec, build_model

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

SPEC = InputSpec(input_size=4, num_outputs=3, sequence_length=9)
HIDDEN = 8

# Each variant alone, as [model] keys. Zoneout's two probabilities differ, so swapping h and c shows.
VARIANTS = {
    "peephole": {"peephole": True},
    "coupled_gates": {"coupled_gates": True},
    "layer_norm": {"layer_norm": True},
    "cell_clip": {"cell_clip": 0.4},
    "zoneout": {"zoneout": [0.1, 0.3]},
    "recurrent_dropout": {"recurrent_dropout": 0.3},
    "weight_drop": {"weight_drop": 0.4},
    "residual": {"residual": True},
    "proj_size": {"proj_size": 3},
    "activations": {"gate_activation": "hard_sigmoid", "cell_activation": "elu", "hidden_activation": "softsign"},
    "relu": {"cell_activation": "relu", "hidden_activation": "relu"},
    "forget_bias": {"forget_bias": 2.5},
    "chrono_init": {"chrono_init": 9},
    "merge_sum": {"merge_mode": "sum"},
    "merge_mean": {"merge_mode": "mean", "readout": "max"},  # the max readout masks the merged outputs
    # Two combinations: every option the LSTM node writes, and every option that needs the Scan loop.
    "node_combination": {"peephole": True, "coupled_gates": True, "recurrent_dropout": 0.2, "weight_drop": 0.2,
                         "residual": True, "gate_activation": "hard_sigmoid"},
    "scan_combination": {"layer_norm": True, "peephole": True, "coupled_gates": True, "proj_size": 3,
                         "cell_clip": 0.5, "zoneout": [0.2, 0.1], "residual": True, "cell_activation": "relu"},
}
LAYOUTS = {
    "unidirectional": {},
    "bidirectional": {"bidirectional": True},
    "two_layers": {"num_layers": 2},
}
# merge_mode combines two directions: its cases run bidirectional, with one layer and with two.
MERGE_LAYOUTS = {
    "bidirectional": {"bidirectional": True},
    "bidirectional_two_layers": {"bidirectional": True, "num_layers": 2},
}
MATRIX = [
    pytest.param(variant, layout, id=f"{name}-{layout_name}")
    for name, variant in VARIANTS.items()
    for layout_name, layout in (MERGE_LAYOUTS if "merge_mode" in variant else LAYOUTS).items()
]


def variant_model(tmp_path, seed=0, **options):
    """A saved and reloaded classifier whose variant parameters (peepholes, layer-norm gains and shifts) are
    random: their initial values (zeros, ones) would hide a weight written in the wrong place."""
    torch.manual_seed(seed)
    config = Config(model=ModelConfig(hidden_size=HIDDEN, **options))
    module = build_model(config.model, SPEC).eval()
    with torch.no_grad():
        for name, parameter in module.lstm.named_parameters():
            if name.startswith(("weight_peephole", "ln_")):
                parameter.add_(0.5 * torch.randn_like(parameter))
    x = raw_inputs(16, seed)
    return load_model(save_model(tmp_path / "model", module, config, SPEC, ["a", "b", "c"], Standardizer().fit(x)))


def raw_inputs(n, seed=1, length=9):
    return np.random.default_rng(seed).normal(3.0, 2.0, size=(n, length, SPEC.input_size)).astype(np.float32)


def op_count(proto, op_type):
    return sum(node.op_type == op_type for node in proto.graph.node)


@pytest.mark.parametrize(("variant", "layout"), MATRIX)
def test_every_variant_exports_verified(tmp_path, variant, layout):
    options = {**variant, **layout}
    model = variant_model(tmp_path, **options)
    predict, step, checks = build_verified_graphs(model, samples=raw_inputs(8), step_file="model.step.onnx")

    # Verified before anything is written: the full batch, the batch padded with 1e3 noise against each
    # sequence alone, and for every unidirectional model the step graph fed in chunks.
    bidirectional = options.get("bidirectional", False)
    assert set(checks) == ({"fixed_length", "variable_length"} | (set() if bidirectional else {"step"}))
    assert max(checks.values()) <= TOLERANCE
    assert (step is None) == bidirectional

    # The standard LSTM node wherever it is exact, else one Scan per layer and direction.
    lstm = model.module.lstm
    layers, directions = lstm.num_layers, lstm.num_directions
    for proto in (predict, step) if step is not None else (predict,):
        onnx.checker.check_model(proto, full_check=True)
        if lstm_node_is_exact(lstm.options):
            assert (op_count(proto, "LSTM"), op_count(proto, "Scan")) == (layers, 0)
        else:
            assert (op_count(proto, "LSTM"), op_count(proto, "Scan")) == (0, layers * directions)
    node = {"layer_norm", "proj_size", "cell_clip", "zoneout"}.isdisjoint(variant)
    assert lstm_node_is_exact(lstm.options) == node


def pytorch_logits_alone(model, x, lengths):
    """Each sequence's logits as PyTorch gives them for its real steps alone."""
    logits = np.zeros((len(x), SPEC.num_outputs), np.float32)
    with torch.no_grad():
        for steps in np.unique(lengths):
            rows = np.flatnonzero(lengths == steps)
            logits[rows] = model.module(standardize(model, x[rows, :steps])).numpy()
    return logits


@pytest.mark.parametrize(("name", "layout", "padded"), [
    ("scan_combination", "bidirectional", True),
    ("layer_norm", "two_layers", True),
    ("proj_size", "unidirectional", True),
    ("peephole", "bidirectional", False),
])
def test_onnx_reference_evaluator_agrees_on_matrix_cases(tmp_path, name, layout, padded):
    """``onnx.reference`` (onnx's own Python evaluator, independent of ONNX Runtime) runs a few matrix
    graphs. Its ``LSTM`` ignores ``sequence_lens`` (onnx 1.23), so a graph with LSTM nodes runs on a full
    batch only: that still checks the peephole order ``[p_i, p_o, p_f]`` as onnx reads it."""
    model = variant_model(tmp_path, **VARIANTS[name], **LAYOUTS[layout])
    predict, _, _ = build_verified_graphs(model, samples=raw_inputs(8), step=False)
    rng = np.random.default_rng(5)
    x = raw_inputs(6, seed=7)
    lengths = rng.integers(1, 10, size=6) if padded else np.full(6, 9)
    lengths[0] = 9
    for n, steps in enumerate(lengths):
        x[n, steps:] = rng.normal(0.0, 1e3, size=x[n, steps:].shape)  # garbage that must not leak
    (logits,) = ReferenceEvaluator(predict).run(["logits"], {"input": x, "lengths": lengths.astype(np.int64)})
    np.testing.assert_allclose(logits, pytorch_logits_alone(model, x, lengths), atol=TOLERANCE, rtol=0)
