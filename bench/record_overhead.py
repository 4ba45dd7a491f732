"""What the gate-recording hook costs an LSTM forward when no recording is on.

``lstmkit.nn.record`` adds to ``LSTM.forward`` one test of its (empty) dictionary of recorded modules,
``record.tap`` (before: one attribute test). This times a tiny forward (batch 1, 8
steps, 8 features, H = 16, under ``torch.no_grad``; the size where a per-call cost shows most) on the fused
path (vanilla LSTM) and the fast path (``peephole=True``), for each source tree given, each in its own
process, in interleaved rounds, and prints the median microseconds per call of each, and the time of the
hook's test alone (which includes the call of a lambda, so it is an upper bound).

    git archive HEAD~1 src | tar -x -C /tmp/base        # the tree before the change
    OMP_NUM_THREADS=1 python bench/record_overhead.py /tmp/base/src src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SNIPPET = r"""
import timeit, torch
from lstmkit.nn import LSTM
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(1, 8, 8)
for name, kwargs in (("fused", {}), ("fast", {"peephole": True})):
    lstm = LSTM(8, 16, batch_first=True, **kwargs).eval()
    with torch.no_grad():
        lstm(x)
        best = min(timeit.repeat(lambda: lstm(x), number=NUMBER, repeat=5)) / NUMBER
    print(name, lstm.backend, f"{best * 1e6:.2f}")
from lstmkit.nn import record
if hasattr(record, "tap"):  # the hook itself: one test of the (empty) dictionary of recorded modules
    test = min(timeit.repeat(lambda: record.tap(lstm) is None, number=100 * NUMBER, repeat=5)) / (100 * NUMBER)
    print("hook", "tap", f"{test * 1e6:.3f}")
elif hasattr(LSTM, "_recorder"):  # before: one attribute test per forward
    test = min(timeit.repeat(lambda: lstm._recorder is None, number=100 * NUMBER, repeat=5)) / (100 * NUMBER)
    print("hook", "attribute-test", f"{test * 1e6:.3f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="source folders to put on PYTHONPATH, e.g. /tmp/base/src src")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=2000, help="calls per timing")
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    backends: dict[tuple[str, str], str] = {}
    for _ in range(args.rounds):
        for source in args.sources:
            env = {**os.environ, "PYTHONPATH": source, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", SNIPPET.replace("NUMBER", str(args.number))], env=env,
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                path, backend, micros = line.split()
                times.setdefault((source, path), []).append(float(micros))
                backends[(source, path)] = backend
    print(f"| source | path | median us/call | min-max ({args.rounds} rounds) |")
    print("|---|---|---|---|")
    for (source, path), values in times.items():
        print(f"| {source} | {path} ({backends[(source, path)]}) | {statistics.median(values):.2f} | "
              f"{min(values):.2f}-{max(values):.2f} |")


if __name__ == "__main__":
    main()
