"""``LSTM.step()`` against ``LSTM.stream().step``: what the general streaming API costs over the stream, per call.

Both run one evaluation-mode step at batch 1 in one C call of the same kernel; ``stream().step`` keeps the
state and output in buffers of its own, while ``step()`` takes the state as an argument, returns new
tensors and leaves the given state untouched (the pattern ``h_t, state = lstm.step(x_t, state)``). The
difference is Python and allocation around the kernel.

For each cell (vanilla, layer norm, peephole) at input and hidden size H, under ``torch.no_grad()`` on one
thread, the two calls are timed interleaved: each round times a block of calls of one, then of the other,
and keeps the best of ``--repeat`` blocks; the table gives the median over rounds and the ratio of the
medians (in brackets, of the minima: the least disturbed blocks), for the calls alone and followed by a
``Linear(H, 10)`` head on the output, as an application would run them (on a busy machine the kernel slows
down when anything runs between two of its calls, so the bare back-to-back loop favours the stream, which
does nothing else). ``--profile`` adds what the parts of a ``step()`` call cost on their own, in the same
rounds: the C call of each (the stream's updates its state in place, step()'s writes into other buffers),
allocating the three new tensors, the two together (the floor for a step() that returns new tensors), and
step() with its C call replaced by nothing (the Python around it). ``--gap`` times ``stream().step`` at
several H back to back and with about 2 us of pure Python between calls: what the kernel loses when its
weights have to come back into the cache (on a loaded 2-vCPU machine, at H = 128, whose 512 KiB of
weights only just fit the 1 MiB L2).

    OMP_NUM_THREADS=1 python bench/step_overhead.py --rounds 15
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import timeit

import torch

from lstmkit.nn import LSTM, fast
from lstmkit.nn.lstm import _FAST_STEPS

CELLS = {"vanilla": {}, "layer_norm": {"layer_norm": True}, "peephole": {"peephole": True}}


def best_per_call(call, number: int, repeat: int) -> float:
    """The best of ``repeat`` blocks of ``number`` calls, in microseconds per call."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def calls(lstm: LSTM, batch: int, profile: bool) -> dict:
    """The calls to time for one module: ``step()`` and ``stream().step`` (and the parts of ``step()``)."""
    x_t = torch.randn(batch, lstm.input_size)
    stream = lstm.stream(batch_size=batch)
    _, state = lstm.step(x_t)  # plans the fast path; later calls take it
    _, state = lstm.step(x_t, state)
    head = torch.nn.Linear(lstm.output_size, 10)  # what an application does between two steps
    timed = {
        "step()": lambda: lstm.step(x_t, state),
        "stream().step": lambda: stream.step(x_t),
        "step() + head": lambda: head(lstm.step(x_t, state)[0]),
        "stream().step + head": lambda: head(stream.step(x_t)),
    }
    if not profile:
        return timed
    fast_step = _FAST_STEPS[lstm]
    h, c = state
    h_t, h_n, c_n = torch.empty(batch, lstm.output_size), torch.empty_like(h), torch.empty_like(c)
    plan, pack = stream._plan, fast.STEP_INTO.pack

    def kernel_into(h_t=h_t, h_n=h_n, c_n=c_n) -> None:  # step()'s C call, on buffers made once
        plan.into_function(pack(plan.address, batch, x_t.data_ptr(), h_t.data_ptr(), h.data_ptr(), c.data_ptr(),
                                h_n.data_ptr(), c_n.data_ptr()))  # fmt: skip

    def new_tensors() -> tuple:
        return torch.empty_like(h), torch.empty_like(c), torch.empty_like(h_t)

    def floor() -> None:  # the least a step() that returns new tensors can do: allocate them, one C call
        kernel_into(*new_tensors())

    no_kernel = copy.deepcopy(lstm)  # its planned step with the C call replaced by nothing: the Python around it
    no_kernel.step(x_t, state)
    _FAST_STEPS[no_kernel]._call = lambda packed: None
    timed.update({
        "C call, state in place (stream)": lambda: plan.run(x_t),
        "C call, state into buffers (step)": kernel_into,
        "3 new tensors (torch.empty_like)": new_tensors,
        "floor: 3 new tensors + C call": floor,
        "step() without the C call": lambda: no_kernel.step(x_t, state),
    })  # fmt: skip
    assert _FAST_STEPS[lstm] is fast_step, "the fast path was planned again between calls"
    return timed


def gap_penalty(rounds: int, number: int, repeat: int) -> None:
    """``stream().step`` back to back and with pure-Python work between calls, at several H."""
    print("| H | weights | stream().step | + 2 us of Python between calls | the Python alone | lost per call |")
    print("|---|---|---|---|---|---|")
    for hidden in (32, 64, 128, 256):
        stream, x_t = LSTM(hidden, hidden).eval().stream(batch_size=1), torch.randn(1, hidden)
        timed = {
            "back to back": lambda stream=stream, x_t=x_t: stream.step(x_t),
            "with a gap": lambda stream=stream, x_t=x_t: (stream.step(x_t), sum(range(400))),
            "gap": lambda: sum(range(400)),
        }  # fmt: skip
        times: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, call in timed.items():
                times.setdefault(name, []).append(best_per_call(call, number, repeat))
        alone, with_gap, gap = (statistics.median(times[name]) for name in timed)
        kib = 2 * 4 * hidden * hidden * 4 // 1024  # W_ih and W_hh, float32
        print(f"| {hidden} | {kib} KiB | {alone:.2f} us | {with_gap:.2f} us | {gap:.2f} us | "
              f"{with_gap - alone - gap:.2f} us |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=500, help="calls per timed block")
    parser.add_argument("--repeat", type=int, default=3, help="blocks per round and call; the best is kept")
    parser.add_argument("--hidden", type=int, default=128, help="input and hidden size H")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="also time the parts of a step() call")
    parser.add_argument("--gap", action="store_true", help="only time the stream with and without a gap")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not fast.available():
        raise SystemExit("the fast kernel cannot be built here: nothing to compare")
    if args.gap:
        with torch.no_grad():
            gap_penalty(args.rounds, args.number, args.repeat)
        return
    torch.manual_seed(0)
    times: dict[tuple[str, str], list[float]] = {}
    with torch.no_grad():
        timed = {
            name: calls(LSTM(args.hidden, args.hidden, **kwargs).eval(), args.batch, args.profile)
            for name, kwargs in CELLS.items()
        }
        for _ in range(args.rounds):
            for name, named_calls in timed.items():
                for call_name, call in named_calls.items():
                    micros = best_per_call(call, args.number, args.repeat)
                    times.setdefault((name, call_name), []).append(micros)
    print(f"B={args.batch}, H={args.hidden}, float32, 1 thread (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}), "
          f"{args.rounds} rounds, torch {torch.__version__}")
    print("| cell | step() | stream().step | ratio | step() + head | stream().step + head | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in CELLS:
        cells = []
        for suffix in ("", " + head"):
            step, stream = (times[(name, call + suffix)] for call in ("step()", "stream().step"))
            ratio, ratio_of_minima = statistics.median(step) / statistics.median(stream), min(step) / min(stream)
            cells += [f"{statistics.median(step):.2f} us (min {min(step):.2f})",
                      f"{statistics.median(stream):.2f} us (min {min(stream):.2f})",
                      f"{ratio:.2f}x ({ratio_of_minima:.2f}x)"]  # fmt: skip
        print(f"| {name} | {' | '.join(cells)} |")
    if args.profile:
        print()
        print("| cell | part of a call | median |")
        print("|---|---|---|")
        for (name, call_name), values in times.items():
            print(f"| {name} | {call_name} | {statistics.median(values):.2f} us |")


if __name__ == "__main__":
    main()
