"""int8 against float32 ONNX exports: file size, latency (batch 1, batch 64, one streaming step) and test accuracy.

Each model folder is exported twice with ``lstmkit.export.export_onnx`` (float32, then ``quantize="int8"``
with no accuracy limit), and both sets are timed side by side in one process, interleaved round by round,
on one ONNX Runtime thread. Accuracy is on the model's whole test split, one sample per call (as export
judges it).

Usage::

    python bench/quantize_int8.py NAME=MODEL_OR_RUN_FOLDER ... [--rounds 7] [--calls 200]

Prints a Markdown table of medians and int8/float32 ratios, and the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table  # noqa: E402


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _median_ms(fn, calls: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def measure(name: str, folder: Path, rounds: int, calls: int, out: Path) -> dict[str, str]:
    from lstmkit.data import load_source
    from lstmkit.export import export_onnx

    float_result = export_onnx(folder, out / f"{name}.onnx")
    int8_result = export_onnx(folder, out / f"{name}.int8.onnx", quantize="int8", max_accuracy_drop=100.0)
    report = int8_result.quantization
    rows = load_source(report.data, download=False).test
    x = rows.x.astype(np.float32)
    length = x.shape[1]
    sets = {"float32": float_result, "int8": int8_result}
    sessions = {kind: _session(r.path) for kind, r in sets.items()}
    steps = {kind: _session(r.step_path) for kind, r in sets.items() if r.step_path is not None}
    one, batch = x[:1], x[:64]

    def predict(kind: str, inputs: np.ndarray):
        return lambda: sessions[kind].run(["probabilities"], {
            "input": inputs, "lengths": np.full(len(inputs), length, np.int64)})

    def step(kind: str):
        layers, hidden = steps[kind].get_inputs()[2].shape[0], steps[kind].get_inputs()[2].shape[2]
        h = np.zeros((layers, 1, hidden), np.float32)
        return lambda: steps[kind].run(["probabilities"], {"input": one[:, :1], "lengths": np.ones(1, np.int64),
                                                            "h0": h, "c0": h})

    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):  # interleaved, so drifting machine load hits both kinds alike
        for kind in sets:
            timings.setdefault((kind, "b1"), []).append(_median_ms(predict(kind, one), calls))
            timings.setdefault((kind, "b64"), []).append(_median_ms(predict(kind, batch), max(10, calls // 10)))
            if kind in steps:
                timings.setdefault((kind, "step"), []).append(_median_ms(step(kind), calls))
    med = {key: float(np.median(values)) for key, values in timings.items()}

    def size(result) -> int:
        return sum(p.stat().st_size for p in result.paths.values())

    def pair(metric: str, unit: str = "ms", digits: int = 3) -> str:
        if ("float32", metric) not in med:
            return "- (no step graph)"
        f, q = med[("float32", metric)], med[("int8", metric)]
        return f"{f:.{digits}f} / {q:.{digits}f} {unit} ({q / f:.2f}x)"

    return {
        "model": name,
        "size float32 / int8": f"{size(float_result) / 1e3:.0f} / {size(int8_result) / 1e3:.0f} kB "
                               f"({size(int8_result) / size(float_result):.2f}x)",
        "batch 1": pair("b1"),
        "batch 64": pair("b64"),
        "stream step": pair("step"),
        "test accuracy float32 / int8": f"{report.float_accuracy:.4f} / {report.int8_accuracy:.4f} "
                                        f"({-report.drop_points:+.2f} pts, {report.samples} samples)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME=FOLDER", help="a model or run folder, with a row name")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="calls per timing (batch 64: a tenth)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstmkit-int8-bench-") as tmp:
        for spec in args.models:
            name, _, folder = spec.partition("=")
            rows.append(measure(name, Path(folder), args.rounds, args.calls, Path(tmp)))
            print(f"done: {name}", file=sys.stderr)
    info = machine_info()
    print(f"Machine: {info['cpu']}, {info['cores']} cores; ONNX Runtime on 1 thread; medians of {args.rounds} "
          f"rounds of {args.calls} calls (batch 64: {max(10, args.calls // 10)}); float32 / int8 (ratio).\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
