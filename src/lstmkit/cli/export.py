"""``lstmkit export MODEL --out FILE.onnx``: ONNX export, verified in ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError


def register(subparsers: Any) -> None:
    export = subparsers.add_parser("export", help="export a model folder to ONNX, verified in ONNX Runtime")
    export.add_argument("model", type=Path, help="model folder")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default onnx)")
    export.add_argument("--out", type=Path, required=True,
                        help="the .onnx file to write; a model that can stream also gets NAME.step.onnx beside it")
    export.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest abs difference from PyTorch allowed in verification (default 1e-4)")
    export.add_argument("--samples", type=Path, metavar="FILE.npy",
                        help="a .npy file of raw inputs (N, L, F) to verify on (default: the model's dataset, "
                             "else random); not the test-split indices of report --samples")
    export.add_argument("--no-step", action="store_true", help="do not write the step graph for streaming")
    export.add_argument("--quantize", choices=["int8"],
                        help="write int8 weights (ONNX Runtime dynamic quantization), judged on the model's test split")
    export.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="POINTS",
                        help="with --quantize: refuse to write when test accuracy drops by more (default 1 point)")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lstmkit.export import export_onnx, read_onnx_meta

    samples = None
    if args.samples:
        try:
            samples = np.load(args.samples, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise LstmkitError(f"export --samples {args.samples}: expected a .npy array (N, L, F), got {exc}") from None
    result = export_onnx(args.model, args.out, tolerance=args.tolerance, samples=samples, step=not args.no_step,
                         quantize=args.quantize, max_accuracy_drop=args.max_accuracy_drop)
    checks = ", ".join(f"{name} {diff:.2g}" for name, diff in result.checks.items())
    meta = read_onnx_meta(result.path)
    if "inputs" in meta:  # a graph that declares its ports (every task's but the classifier's, so far)
        print(f"wrote {result.path} (predict graph: {_ports(meta['inputs'])} -> {_ports(meta['outputs'])})")
    else:
        print(f"wrote {result.path} (predict graph: input (N, L, {int(meta['input_size'])}) and lengths (N,))")
    if result.step_path is not None:
        print(f"wrote {result.step_path} (step graph for streaming: input, lengths, h0, c0 -> outputs per step, h_n, c_n)")
    else:
        print(f"no step graph: {result.streaming_unsupported}")
    for role, path in result.paths.items():  # the set's other graphs and side files, by role
        if role not in ("predict", "step"):
            print(f"wrote {path} ({role})")
    print(f"verified in ONNX Runtime against PyTorch: max abs difference {result.max_abs_diff:.2g} ({checks})")
    if result.quantization is not None:
        print(f"quantized to int8: {result.quantization.describe()}")
    return 0


def _ports(ports: list[dict[str, Any]]) -> str:
    """``name dtype (dims)`` of each port, e.g. ``history float32 (N, L, 1)``."""
    return ", ".join(f"{p['name']} {p['dtype']} ({', '.join(str(d) for d in p['shape'])})" for p in ports)
