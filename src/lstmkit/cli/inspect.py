"""``lstmkit inspect MODEL INPUT``: gate and cell-state views of one input file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstmkit.cli._common import load_signal


def register(subparsers: Any) -> None:
    inspect = subparsers.add_parser("inspect", help="gate and cell-state views of one input file (as predict reads it)")
    inspect.add_argument("model", type=Path, help="model folder")
    inspect.add_argument("input", help="input file: .npy, .csv or an image")
    inspect.add_argument("--units", help="units to plot, e.g. 3,7 (default: the widest-ranging ones)")
    inspect.add_argument("--signal", type=Path, help="a .npy array (samples, L) or (L,) to rank units against")
    inspect.add_argument("--out", type=Path, help="output folder (default: inspect-STEM beside the input)")
    inspect.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.report import inspect_input, parse_indices

    units = parse_indices(args.units, "inspect --units") if args.units else None
    path = inspect_input(args.model, args.input, units=units, out_dir=args.out, signal=load_signal(args.signal))
    print(f"wrote {path}")
    return 0
