"""Speed of lstmkit's LSTM engine against torch.nn.LSTM, its own reference loop, Keras/TensorFlow, NumPy
and ONNX Runtime.

Tables (markdown, printed; ``--out`` also writes them to a file):

1. training step (forward, backward, Adam; linear head + cross-entropy) at the seed shape, batch 128 x 28
   steps x 28 features, H = 128: torch.nn.LSTM, lstmkit's vanilla LSTM (fused path: wrapper overhead), and
   each variant on the fast kernel, on the reference loop, against the vanilla fused time;
2. inference (forward under ``torch.no_grad``) at the seed shape, the same rows;
3. training step on a long series, 64 x 500 x 1, H = 64 (regression head, MSE);
4. training step on text-like input, 32 x 200 x 128, H = 256, bidirectional, 2 layers;
5. streaming, one step per call at batch 1, input size = H, H in {128, 256}: ``LSTM.stream()``,
   ``LSTM.step`` under ``no_grad``, ``torch.nn.LSTM`` on one step, ``torch.nn.LSTMCell``, NumPy with
   preallocated buffers and, if ``onnxruntime`` imports, ONNX Runtime on an exported one-step LSTM;
6. peak RSS of a seed-shape training loop, each implementation in a fresh process.

Where TensorFlow imports (the ``bench`` extra; ``--no-keras`` leaves it out), every timing table also has
Keras rows (``bench/keras_peer.py``): at the seed shape the seed's own model (``LSTM(128, activation="relu")``)
and the same with tanh, a Keras LSTM of the same structure at the other shapes, and a Keras ``LSTMCell`` step
for streaming.

Within a table every implementation is built first, warmed up, then timed in interleaved rounds; the
table reports the median, min-max and ratios to the row the table names, all from the same run.

    python bench/engine.py                 # everything, 1 thread, 7 rounds
    python bench/engine.py --quick         # fewer rounds, no text shape, no reference loop at long shapes
    python bench/engine.py --only stream --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")  # NumPy's BLAS and ONNX Runtime follow --threads below

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table, summarize  # noqa: E402
import keras_peer  # noqa: E402

from lstmkit.nn import LSTM  # noqa: E402
from lstmkit.nn import fast as lstm_fast  # noqa: E402

#: Variants timed at the seed shape, by name: the LSTM keyword arguments.
SEED_VARIANTS: dict[str, dict] = {
    "layer_norm": {"layer_norm": True},
    "peephole": {"peephole": True},
    "coupled_gates": {"coupled_gates": True},
    "cell_clip=3": {"cell_clip": 3.0},
    "zoneout=0.1": {"zoneout": 0.1},
    "recurrent_dropout=0.25": {"recurrent_dropout": 0.25},
    "weight_drop=0.25": {"weight_drop": 0.25},
    "relu cell + hidden": {"cell_activation": "relu", "hidden_activation": "relu"},
    "proj_size=64": {"proj_size": 64},
    "peephole + layer_norm + zoneout": {"peephole": True, "layer_norm": True, "zoneout": 0.1},
}

Runner = Callable[[], None]


# --- Timing --------------------------------------------------------------------------------------------------


def interleaved(runners: dict[str, Runner], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each runner: warm-up calls, then ``rounds`` rounds calling each once in turn,
    each round starting one runner later than the previous one (no runner is always first)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            gc.collect()
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return times


def per_call(run: Runner, calls: int) -> Runner:
    """A runner that calls ``run`` ``calls`` times, for timings too short to take one at a time."""

    def repeated() -> None:
        for _ in range(calls):
            run()

    return repeated


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}"


# --- Models and steps --------------------------------------------------------------------------------------


def make_lstm(kind: str, input_size: int, hidden: int, **config) -> nn.Module:
    """``kind``: "torch" (torch.nn.LSTM), or an lstmkit ``impl`` ("auto", "fast", "reference")."""
    if kind == "torch":
        return nn.LSTM(input_size, hidden, batch_first=True, **config)
    return LSTM(input_size, hidden, batch_first=True, impl=kind, **config)


def training_step(lstm: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int | None) -> Runner:
    """Forward, loss, backward, Adam: a classifier on the last step's output, or a regressor with MSE."""
    out_size = lstm.proj_size or lstm.hidden_size
    width = out_size * (2 if lstm.bidirectional else 1)
    head = nn.Linear(width, classes or 1)
    optimizer = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
    lstm.train()

    def step() -> None:
        output, _ = lstm(x)  # (N, L, D * H_out)
        prediction = head(output[:, -1])
        if classes:
            loss = nn.functional.cross_entropy(prediction, y)
        else:
            loss = nn.functional.mse_loss(prediction.squeeze(-1), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def inference(lstm: nn.Module, x: torch.Tensor) -> Runner:
    lstm.eval()

    def forward() -> None:
        with torch.no_grad():
            lstm(x)

    return forward


def backend_of(lstm: nn.Module) -> str:
    return "torch" if isinstance(lstm, nn.LSTM) else lstm.backend


# --- Tables ------------------------------------------------------------------------------------------------


def seed_tables(args: argparse.Namespace) -> list[tuple[str, list[dict]]]:
    """Training step and inference at the seed shape, vanilla and every variant."""
    torch.manual_seed(0)
    x = torch.randn(128, 28, 28)
    y = torch.randint(0, 10, (128,))
    tables = []
    for mode in ("training step", "inference"):
        runners: dict[str, Runner] = {}
        backends: dict[str, str] = {}

        def add(name: str, kind: str, **config) -> None:
            torch.manual_seed(1)
            lstm = make_lstm(kind, 28, 128, **config)
            backends[name] = backend_of(lstm)
            runners[name] = training_step(lstm, x, y, 10) if mode == "training step" else inference(lstm, x)

        add("torch.nn.LSTM", "torch")
        add("lstmkit vanilla", "auto")
        if args.keras:
            for name, activation in (("Keras LSTM(128), tanh", "tanh"), ("Keras seed model: LSTM(128, relu)", "relu")):
                if mode == "training step":
                    run = keras_peer.training_step(args.threads, x.numpy(), y.numpy(), 128, 10, activation)
                else:
                    run = keras_peer.inference(args.threads, x.numpy(), 128, 10, activation)
                if isinstance(run, str):
                    print(run, file=sys.stderr)
                    break
                runners[name], backends[name] = run, "keras"
        variants = SEED_VARIANTS if not args.quick else dict(list(SEED_VARIANTS.items())[:2])
        for name, config in variants.items():
            add(f"{name}: fast", "fast", **config)
            add(f"{name}: reference loop", "reference", **config)
        times = interleaved(runners, args.rounds)
        torch_median = summarize(times["torch.nn.LSTM"])["median"]
        vanilla_median = summarize(times["lstmkit vanilla"])["median"]
        rows = []
        for name, samples in times.items():
            s = summarize(samples)
            variant = name.split(":")[0]
            reference = times.get(f"{variant}: reference loop")
            speedup = "" if reference is None else f"{summarize(reference)['median'] / s['median']:.2f}x"
            rows.append({
                "implementation": name, "path": backends[name], "ms (median)": ms(s["median"]),
                "min-max": f"{ms(s['min'])}-{ms(s['max'])}", "vs torch.nn.LSTM": f"{s['median'] / torch_median:.2f}x",
                "vs lstmkit vanilla": f"{s['median'] / vanilla_median:.2f}x",
                "reference loop / this": speedup if name.endswith(": fast") else "",
            })  # fmt: skip
        tables.append((f"{mode.capitalize()} at the seed shape (batch 128, 28 steps, 28 features, H=128)", rows))
    return tables


def shape_table(title: str, args: argparse.Namespace, batch: int, steps: int, features: int, hidden: int,
                classes: int | None, variants: dict[str, dict], reference: bool, **structure) -> tuple[str, list[dict]]:  # fmt: skip
    """Training step at one shape: torch.nn.LSTM, lstmkit vanilla, then each variant fast (and reference)."""
    torch.manual_seed(0)
    x = torch.randn(batch, steps, features)
    y = torch.randint(0, classes, (batch,)) if classes else torch.randn(batch)
    runners: dict[str, Runner] = {}
    backends: dict[str, str] = {}

    def add(name: str, kind: str, **config) -> None:
        torch.manual_seed(1)
        lstm = make_lstm(kind, features, hidden, **structure, **config)
        backends[name] = backend_of(lstm)
        runners[name] = training_step(lstm, x, y, classes)

    add("torch.nn.LSTM", "torch")
    add("lstmkit vanilla", "auto")
    if args.keras:
        run = keras_peer.training_step(args.threads, x.numpy(), y.numpy(), hidden, classes,
                                       num_layers=structure.get("num_layers", 1),
                                       bidirectional=structure.get("bidirectional", False))
        if isinstance(run, str):
            print(run, file=sys.stderr)
        else:
            runners["Keras LSTM, same structure"], backends["Keras LSTM, same structure"] = run, "keras"
    for name, config in variants.items():
        add(f"{name}: fast", "fast", **config)
        if reference:
            add(f"{name}: reference loop", "reference", **config)
    times = interleaved(runners, max(3, args.rounds // 2), warmup=1)
    torch_median = summarize(times["torch.nn.LSTM"])["median"]
    vanilla_median = summarize(times["lstmkit vanilla"])["median"]
    rows = []
    for name, samples in times.items():
        s = summarize(samples)
        ref = times.get(f"{name.split(':')[0]}: reference loop")
        rows.append({
            "implementation": name, "path": backends[name], "ms (median)": ms(s["median"]),
            "min-max": f"{ms(s['min'])}-{ms(s['max'])}", "vs torch.nn.LSTM": f"{s['median'] / torch_median:.2f}x",
            "vs lstmkit vanilla": f"{s['median'] / vanilla_median:.2f}x",
            "reference loop / this": f"{summarize(ref)['median'] / s['median']:.2f}x" if ref and name.endswith("fast") else "",
        })  # fmt: skip
    return title, rows


def overhead_table(args: argparse.Namespace, seed_step_seconds: float | None) -> tuple[str, list[dict]]:
    """lstmkit's vanilla LSTM against torch.nn.LSTM on a one-step, one-sequence input, where the shared
    kernel costs next to nothing: the difference is lstmkit's wrapper (checks, state set-up, dispatch)."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 28)
    theirs = nn.LSTM(28, 128, batch_first=True)
    ours = LSTM.from_torch(theirs)

    def train_call(module: nn.Module) -> Runner:
        def run() -> None:
            output, _ = module(x)
            output.sum().backward()

        return run

    def eval_call(module: nn.Module) -> Runner:
        def run() -> None:
            with torch.no_grad():
                module(x)

        return run

    calls = 200
    runners = {
        ("forward + backward", "torch.nn.LSTM"): train_call(theirs),
        ("forward + backward", "lstmkit"): train_call(ours),
        ("forward, no_grad", "torch.nn.LSTM"): eval_call(theirs),
        ("forward, no_grad", "lstmkit"): eval_call(ours),
    }
    times = interleaved({k: per_call(run, calls) for k, run in runners.items()}, args.rounds * 2)
    rows = []
    for mode in ("forward + backward", "forward, no_grad"):
        theirs_s = summarize([t / calls for t in times[(mode, "torch.nn.LSTM")]])
        ours_s = summarize([t / calls for t in times[(mode, "lstmkit")]])
        extra = ours_s["median"] - theirs_s["median"]
        share = "" if seed_step_seconds is None else f"{100 * extra / seed_step_seconds:.2f}%"
        rows.append({
            "call (batch 1, 1 step, H=128)": mode, "torch.nn.LSTM µs": us(theirs_s["median"]),
            "lstmkit µs": us(ours_s["median"]), "lstmkit extra µs": us(extra),
            "extra / seed-shape training step": share,
        })  # fmt: skip
    return "Wrapper overhead of lstmkit's vanilla (fused) path over torch.nn.LSTM, same kernel", rows


# --- Streaming ---------------------------------------------------------------------------------------------


class NumpyStep:
    """A vanilla LSTM step in NumPy on preallocated buffers (the fastest plain-NumPy formulation we know)."""

    def __init__(self, lstm: nn.LSTM) -> None:
        w_ih = lstm.weight_ih_l0.detach().numpy()
        w_hh = lstm.weight_hh_l0.detach().numpy()
        self.w = np.ascontiguousarray(np.concatenate([w_ih, w_hh], axis=1))  # (4H, H_in + H)
        self.b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy().copy()
        self.h_size = lstm.hidden_size
        self.xh = np.zeros(w_ih.shape[1] + self.h_size, dtype=np.float32)
        self.z = np.zeros(4 * self.h_size, dtype=np.float32)
        self.c = np.zeros(self.h_size, dtype=np.float32)
        self.tmp = np.zeros(self.h_size, dtype=np.float32)

    def step(self, x: np.ndarray) -> np.ndarray:
        h_size, z = self.h_size, self.z
        self.xh[: -h_size] = x
        np.matmul(self.w, self.xh, out=z)
        z += self.b
        ifo = z[: 2 * h_size], z[3 * h_size :]
        for gate in ifo:  # sigmoid in place
            np.negative(gate, out=gate)
            np.exp(gate, out=gate)
            gate += 1.0
            np.reciprocal(gate, out=gate)
        g = z[2 * h_size : 3 * h_size]
        np.tanh(g, out=g)
        self.c *= z[h_size : 2 * h_size]
        np.multiply(z[:h_size], g, out=self.tmp)
        self.c += self.tmp
        h = self.xh[-h_size:]
        np.tanh(self.c, out=h)
        h *= z[3 * h_size :]
        return h


def onnx_step(lstm: nn.LSTM, hidden: int, threads: int) -> Runner | str:
    """ONNX Runtime on ``lstm`` exported for one step with explicit state, or why it cannot run."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"ONNX Runtime not measured: {exc}"
    import io

    x = torch.randn(1, 1, lstm.input_size)
    h0, c0 = torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden) + 0.0  # distinct tensors (PERFORMANCE-NOTES)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and warns about batch sizes
        warnings.simplefilter("ignore")
        torch.onnx.export(lstm, (x, (h0, c0)), buffer, input_names=["x", "h0", "c0"],
                          output_names=["y", "hn", "cn"], dynamo=False)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    state = {"x": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy()}

    def step() -> None:
        _, state["h0"], state["c0"] = session.run(None, state)

    return step


def stream_table(args: argparse.Namespace) -> tuple[str, list[dict]]:
    rows = []
    calls = 2000 if not args.quick else 500
    for hidden in (128, 256):
        torch.manual_seed(0)
        theirs = nn.LSTM(hidden, hidden).eval()
        ours = LSTM.from_torch(theirs).eval()
        cell = nn.LSTMCell(hidden, hidden).eval()
        x_vec = torch.randn(hidden)
        x_row = x_vec.unsqueeze(0)  # (1, H_in)
        x_seq = x_vec.view(1, 1, hidden)  # (L=1, N=1, H_in)
        stream = ours.stream()
        torch_state = (torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden))
        cell_state = (torch.zeros(1, hidden), torch.zeros(1, hidden))
        step_state: dict = {"state": None}
        numpy_lstm = NumpyStep(theirs)
        x_np = x_vec.numpy()

        def lstmkit_step() -> None:
            with torch.no_grad():
                _, step_state["state"] = ours.step(x_vec, step_state["state"])

        def torch_lstm() -> None:
            nonlocal torch_state
            with torch.no_grad():
                _, torch_state = theirs(x_seq, torch_state)

        def torch_cell() -> None:
            nonlocal cell_state
            with torch.no_grad():
                cell_state = cell(x_row, cell_state)

        runners = {
            "lstmkit LSTM.stream().step": lambda: stream.step(x_vec),
            "lstmkit LSTM.step (no_grad)": lstmkit_step,
            "torch.nn.LSTM, one step": torch_lstm,
            "torch.nn.LSTMCell": torch_cell,
            "NumPy, preallocated": lambda: numpy_lstm.step(x_np),
        }
        if args.keras:
            keras = keras_peer.stream_step(args.threads, hidden)
            if isinstance(keras, str):
                print(keras, file=sys.stderr)
            else:
                runners["Keras LSTMCell (tf.function)"] = keras
        onnx = onnx_step(theirs, hidden, args.threads)
        if isinstance(onnx, str):
            print(onnx, file=sys.stderr)
        else:
            runners["ONNX Runtime"] = onnx
        slow = ("lstmkit LSTM.step (no_grad)", "torch.nn.LSTM, one step", "Keras LSTMCell (tf.function)")
        scale = {name: calls // 4 if name in slow else calls for name in runners}  # calls per timed sample
        times = interleaved({name: per_call(run, scale[name]) for name, run in runners.items()}, args.rounds)
        per_step = {name: [t / scale[name] for t in samples] for name, samples in times.items()}
        stream_median = summarize(per_step["lstmkit LSTM.stream().step"])["median"]
        for name, samples in per_step.items():
            s = summarize(samples)
            rows.append({
                "H": str(hidden), "implementation": name, "µs/step (median)": us(s["median"]),
                "min-max": f"{us(s['min'])}-{us(s['max'])}", "vs stream": f"{s['median'] / stream_median:.2f}x",
            })  # fmt: skip
    title = "Streaming inference, batch 1, one step per call, input size = H (float32, evaluation)"
    return title, rows


# --- Peak memory -------------------------------------------------------------------------------------------

RSS_CASES = {
    "torch.nn.LSTM": ("torch", {}),
    "lstmkit vanilla (fused)": ("auto", {}),
    "layer_norm: fast": ("fast", {"layer_norm": True}),
    "layer_norm: reference loop": ("reference", {"layer_norm": True}),
    "peephole: fast": ("fast", {"peephole": True}),
    "peephole: reference loop": ("reference", {"peephole": True}),
}


def peak_rss_mib() -> float:
    """This process's peak resident set size: VmHWM (which, unlike ru_maxrss, restarts at exec), in MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(name: str, threads: int) -> None:
    """In a fresh process: peak RSS growth over 5 seed-shape training steps, in MiB, printed as JSON."""
    torch.set_num_threads(threads)
    kind, config = RSS_CASES[name]
    torch.manual_seed(0)
    x, y = torch.randn(128, 28, 28), torch.randint(0, 10, (128,))
    lstm = make_lstm(kind, 28, 128, **config)
    if kind == "fast":
        lstm_fast.available()  # load the kernel before the baseline
    step = training_step(lstm, x, y, 10)
    before = peak_rss_mib()
    for _ in range(5):
        step()
    print(json.dumps({"before": before, "peak": peak_rss_mib()}))


def rss_table(args: argparse.Namespace) -> tuple[str, list[dict]]:
    rows = []
    for name in RSS_CASES:
        result = subprocess.run(
            [sys.executable, __file__, "--rss-child", name, "--threads", str(args.threads)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        values = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append({
            "implementation": name, "peak RSS (MiB)": f"{values['peak']:.0f}",
            "growth over 5 training steps (MiB)": f"{values['peak'] - values['before']:.0f}",
        })  # fmt: skip
    return "Peak RSS of a process running 5 seed-shape training steps (each in a fresh process)", rows


# --- Main --------------------------------------------------------------------------------------------------

SECTIONS = ("seed", "series", "text", "stream", "rss")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per table (default 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch (and ONNX Runtime) threads (default 1)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="fewer variants and calls; no text shape")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    parser.add_argument("--no-keras", dest="keras", action="store_false",
                        help="leave out the Keras/TensorFlow rows (they need the bench extra)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child, args.threads)
        return 0
    sections = args.only or [s for s in SECTIONS if not (args.quick and s == "text")]

    start = time.perf_counter()
    build_start = time.perf_counter()
    if not lstm_fast.available():
        print("warning: the fast kernel is unavailable; its rows run the reference loop", file=sys.stderr)
    build_seconds = time.perf_counter() - build_start
    info = machine_info()
    info["date"] = datetime.date.today().isoformat()
    lines = [
        f"Command: `{' '.join(['python bench/engine.py', *sys.argv[1:]])}`",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        f"Fast kernel load (or build, on a machine's first run): {build_seconds:.1f} s",
        "",
    ]
    tables: list[tuple[str, list[dict]]] = []
    if "seed" in sections:
        seed = seed_tables(args)
        vanilla_row = next(row for row in seed[0][1] if row["implementation"] == "lstmkit vanilla")
        tables += seed
        tables.append(overhead_table(args, float(vanilla_row["ms (median)"]) / 1e3))
    if "series" in sections:
        series_variants = {"layer_norm": {"layer_norm": True}, "peephole": {"peephole": True}}
        tables.append(shape_table("Training step, long series (batch 64, 500 steps, 1 feature, H=64, MSE head)",
                                  args, 64, 500, 1, 64, None, series_variants, reference=not args.quick))  # fmt: skip
    if "text" in sections:
        text_variants = {"layer_norm": {"layer_norm": True}, "peephole": {"peephole": True}}
        tables.append(shape_table(
            "Training step, text-like (batch 32, 200 steps, 128 features, H=256, bidirectional, 2 layers)",
            args, 32, 200, 128, 256, 10, text_variants, reference=True, num_layers=2, bidirectional=True,
        ))  # fmt: skip
    if "stream" in sections:
        tables.append(stream_table(args))
    if "rss" in sections:
        tables.append(rss_table(args))
    for title, rows in tables:
        lines += [f"### {title}", "", markdown_table(rows), ""]
    lines.append(f"Total benchmark time: {time.perf_counter() - start:.0f} s")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
