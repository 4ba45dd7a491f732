"""Where a py-spy profile's time goes: the functions with the most samples, inclusive and exclusive.

Reads the collapsed stacks that ``bench/load_serve.py --profile-server DIR`` writes (``py-spy record --format
raw``: one line per stack, ``frame;frame;... count``) and prints, for the event loop's thread and the model
worker's thread together (``--within``; start-up is left out), the top functions by inclusive share (anywhere on the stack) and by self share (the
leaf frame), as percentages of all samples.

    .venv/bin/python bench/profile_top.py /tmp/prof/onnx.txt --top 25
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``function (file.py)`` with the directories and line number dropped."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['name']} ({Path(match['file']).name})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--within", nargs="+", default=["BaseEventLoop.run_forever", "_worker (thread.py)"],
                        help="keep only stacks with one of these frames (default: the event loop and the worker "
                             "threads, i.e. serving, not start-up)")
    args = parser.parse_args()
    inclusive, exclusive, total = Counter(), Counter(), 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        if args.within and not any(w in f for f in frames for w in args.within):
            continue
        n = int(count)
        total += n
        exclusive[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    print(f"{args.profile}: {total} samples")
    for title, counter in (("inclusive", inclusive), ("self", exclusive)):
        print(f"\n{title}:")
        for name, n in counter.most_common(args.top):
            print(f"{100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
