"""ONNX Runtime time of an exported LSTM layer: the standard ``LSTM`` node against the ``Scan`` loop.

The same vanilla weights written both ways by ``lstmkit.export.lstm_graph.lstm_stack`` (``scan=True`` forces
the loop the variants need), and a layer-norm LSTM (which always runs as the loop), at two shapes: the seed
shape (128 sequences of 28 steps, 28 features, H = 128) and one streaming step (batch 1, 1 step). One ORT
thread; the graphs are interleaved, ``--rounds`` each after a warm-up; medians, min-max, ratio to the node.

    python bench/export_scan.py --rounds 15
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table, summarize

from lstmkit.export.graph import IR_VERSION, OPSET, GraphBuilder
from lstmkit.export.lstm_graph import lstm_stack
from lstmkit.export.verify import ort_session
from lstmkit.nn import LSTM

FEATURES, HIDDEN = 28, 128
SHAPES = {"seed shape: 128 x 28 steps": (128, 28), "one streaming step: batch 1": (1, 1)}


def stack_session(lstm: LSTM, scan: bool):
    from onnx import TensorProto, helper

    g = GraphBuilder()
    lengths = g.op("Cast", ["lengths"], to=TensorProto.INT32)
    y, _, _ = lstm_stack(g, lstm, "x", lengths, scan=scan)
    g.op("Identity", [y], outputs=["y"])
    graph = helper.make_graph(
        g.nodes, "bench",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["L", "N", FEATURES]),
         helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["L", "N", HIDDEN])], g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    return ort_session(proto)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    vanilla, layer_norm = LSTM(FEATURES, HIDDEN).eval(), LSTM(FEATURES, HIDDEN, layer_norm=True).eval()
    sessions = {"LSTM node": stack_session(vanilla, scan=False), "Scan loop": stack_session(vanilla, scan=True),
                "Scan loop, layer norm": stack_session(layer_norm, scan=False)}
    print(machine_info())
    rows = []
    for shape, (batch, steps) in SHAPES.items():
        feeds = {"x": np.random.default_rng(0).normal(size=(steps, batch, FEATURES)).astype(np.float32),
                 "lengths": np.full(batch, steps, np.int64)}
        calls = 20 if batch > 1 else 300
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for session in sessions.values():
            session.run(["y"], feeds)  # warm-up
        for _ in range(args.rounds):
            for name, session in sessions.items():
                start = time.perf_counter()
                for _ in range(calls):
                    session.run(["y"], feeds)
                times[name].append((time.perf_counter() - start) / calls)
        node = summarize(times["LSTM node"])["median"]
        for name, samples in times.items():
            stats = summarize(samples)
            rows.append({"shape": shape, "graph": name, "median ms": f"{stats['median'] * 1e3:.3f}",
                         "min-max ms": f"{stats['min'] * 1e3:.3f}-{stats['max'] * 1e3:.3f}",
                         "vs node": f"{stats['median'] / node:.2f}x"})
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
