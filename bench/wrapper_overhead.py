"""What lstmkit's Python wrapper costs per call, source tree against source tree: where a per-call change shows.

Times, on one thread, the calls whose cost is mostly Python around the kernels (the backend choice, reading
the parameters, drawing masks), each at a size where that overhead shows:

- ``forward`` of a tiny batch (1 x 8 steps x 8 features, H = 16) under ``torch.no_grad``, vanilla (fused)
  and ``peephole=True`` (fast kernel);
- ``LSTM.step`` at batch 1, H = 128, under ``torch.no_grad`` (one C call) and with autograd (reference step);
- ``LSTMStream.step`` at batch 1, H = 128;
- a training step (forward + backward) with ``recurrent_dropout`` and ``zoneout`` (the masks), 8 x 16 x 8, H = 16.

Each source tree runs in its own process, in interleaved rounds; it prints the median microseconds per call.

    git archive BASE src | tar -x -C /tmp/base        # the tree before the change
    python bench/wrapper_overhead.py /tmp/base/src src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SNIPPET = r"""
import timeit, torch
from lstmkit.nn import LSTM, fast
torch.set_num_threads(1)
fast.available()  # build or load the kernel first: the vanilla step takes it only once loaded
torch.manual_seed(0)

def best(call, number):
    call()
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6

x = torch.randn(1, 8, 8)
for name, kwargs in (("vanilla", {}), ("peephole", {"peephole": True})):
    lstm = LSTM(8, 16, batch_first=True, **kwargs).eval()
    with torch.no_grad():
        print(f"forward-{name}", lstm.backend, f"{best(lambda: lstm(x), NUMBER):.2f}")
    big = LSTM(128, 128, **kwargs).eval()
    x_t = torch.randn(1, 128)
    with torch.no_grad():
        _, state = big.step(x_t)
        print(f"step-nograd-{name}", "step", f"{best(lambda: big.step(x_t, state), NUMBER):.2f}")
    print(f"step-grad-{name}", "reference", f"{best(lambda: big.step(x_t, state), NUMBER // 4):.2f}")
    stream = big.stream()
    x_1 = torch.randn(128)
    print(f"stream-{name}", stream.backend, f"{best(lambda: stream.step(x_1), NUMBER):.2f}")
masked = LSTM(8, 16, batch_first=True, recurrent_dropout=0.1, zoneout=0.1).train()
xs = torch.randn(8, 16, 8)
def train_step():
    masked(xs)[0].sum().backward()
print("train-masks", masked.backend, f"{best(train_step, NUMBER // 10):.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="source folders to put on PYTHONPATH, e.g. /tmp/base/src src")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=2000, help="calls per timing (fewer for the slow calls)")
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    backends: dict[tuple[str, str], str] = {}
    for _ in range(args.rounds):
        for source in args.sources:
            env = {**os.environ, "PYTHONPATH": source, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", SNIPPET.replace("NUMBER", str(args.number))], env=env,
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                call, backend, micros = line.split()
                times.setdefault((source, call), []).append(float(micros))
                backends[(source, call)] = backend
    print(f"| call | {' | '.join(args.sources)} | ratio (last / first) |")
    print("|---|" + "---|" * len(args.sources) + "---|")
    for call in dict.fromkeys(call for _, call in times):
        medians = [statistics.median(times[(source, call)]) for source in args.sources]
        cells = " | ".join(f"{m:.2f} us ({backends[(s, call)]})" for m, s in zip(medians, args.sources))
        print(f"| {call} | {cells} | {medians[-1] / medians[0]:.3f} |")


if __name__ == "__main__":
    main()
