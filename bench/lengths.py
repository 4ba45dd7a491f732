"""Variable-length batches: lstmkit's LSTM with ``lengths`` against torch.nn.LSTM on packed input, same run.

One training pass (forward, then backward of the summed outputs) per call, for three shapes: the adding
problem (50 sequences of 110..220 steps, 2 features, H = 32), JapaneseVowels-like speech (64 of 7..29 steps,
12 features, H = 64, bidirectional) and the seed shape with ragged rows (128 of 14..28 steps, 28 features,
H = 128). Rows:

- ``torch.nn.LSTM, packed``: ``pack_padded_sequence`` -> ``torch.nn.LSTM`` -> ``pad_packed_sequence``;
- ``torch.nn.LSTM, full batch``: the same batch without lengths (padding computed; the speed of light);
- ``lstmkit impl="fused", lengths``: lstmkit forced onto PyTorch's kernel, which packs;
- ``lstmkit impl="auto", lengths``: what users get (the fast kernel on the CPU).

Implementations are interleaved, ``--rounds`` each, after a warm-up; medians, min-max, ratio to packed.

    python bench/lengths.py --threads 1 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table, summarize  # noqa: E402

from lstmkit.nn import LSTM  # noqa: E402

SHAPES = {
    "adding: 50 x 110..220 steps, 2 features, H=32": (50, 110, 220, 2, 32, False),
    "speech: 64 x 7..29 steps, 12 features, H=64, bidirectional": (64, 7, 29, 12, 64, True),
    "seed rows: 128 x 14..28 steps, 28 features, H=128": (128, 14, 28, 28, 128, False),
}


def runners(n: int, shortest: int, longest: int, features: int, hidden: int, bidirectional: bool) -> dict:
    torch.manual_seed(0)
    x = torch.randn(n, longest, features)
    lengths = torch.randint(shortest, longest + 1, (n,))
    lengths[0] = longest
    reference = torch.nn.LSTM(features, hidden, batch_first=True, bidirectional=bidirectional)
    fused = LSTM(features, hidden, batch_first=True, bidirectional=bidirectional, impl="fused")
    auto = LSTM(features, hidden, batch_first=True, bidirectional=bidirectional)
    fused.load_state_dict(reference.state_dict())
    auto.load_state_dict(reference.state_dict())

    def packed() -> None:
        out, _ = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        pad_packed_sequence(out, batch_first=True, total_length=longest)[0].sum().backward()

    return {
        "torch.nn.LSTM, packed": packed,
        "torch.nn.LSTM, full batch (no lengths)": lambda: reference(x)[0].sum().backward(),
        'lstmkit impl="fused", lengths': lambda: fused(x, lengths=lengths)[0].sum().backward(),
        'lstmkit impl="auto", lengths': lambda: auto(x, lengths=lengths)[0].sum().backward(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    for title, shape in SHAPES.items():
        runs = runners(*shape)
        for run in runs.values():  # warm-up (and the fast kernel's one-off build)
            run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        base = summarize(times["torch.nn.LSTM, packed"])["median"]
        rows = []
        for name, samples in times.items():
            s = summarize(samples)
            rows.append({"implementation": name, "ms (median)": f"{s['median'] * 1e3:.1f}",
                         "min-max": f"{s['min'] * 1e3:.1f}-{s['max'] * 1e3:.1f}",
                         "vs packed torch.nn.LSTM": f"{s['median'] / base:.2f}x"})
        print(f"\n{title}, forward + backward, {args.threads} thread(s), {args.rounds} interleaved rounds\n")
        print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
