"""``lstmkit report RUN``: write RUN/report.html (curves, evaluation, gate and cell-state views)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstmkit.cli._common import load_signal


def register(subparsers: Any) -> None:
    report = subparsers.add_parser("report", help="write RUN/report.html: curves, evaluation, gate and cell-state views")
    report.add_argument("run", type=Path, help="run folder written by lstmkit train")
    report.add_argument("--samples", metavar="INDICES",
                        help="test-split indices to look inside, e.g. 0,1,2 (default: the first three, or as many "
                             "as the test split has); not a file, unlike export --samples")
    report.add_argument("--signal", type=Path, help="a .npy array (samples, L) or (L,) to rank units against")
    report.add_argument("--units", help="units to plot in every layer, e.g. 3,7 (default: the top-ranked ones)")
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.runs.folder import resolve_run_folder

    run_folder = resolve_run_folder(args.run, "report")  # RUN/model is refused with a pointer to RUN

    from lstmkit.report import parse_indices, write_report

    samples = parse_indices(args.samples, "report --samples") if args.samples is not None else None
    units = parse_indices(args.units, "report --units") if args.units else None
    path = write_report(run_folder.root, samples=samples, signal=load_signal(args.signal), units=units)
    print(f"wrote {path}")
    return 0
