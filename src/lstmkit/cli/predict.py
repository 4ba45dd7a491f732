"""``lstmkit predict MODEL INPUT...``: labels and probabilities for input files, stdin, or texts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lstmkit.cli._common import at_least_one, prediction_line


def register(subparsers: Any) -> None:
    predict = subparsers.add_parser("predict", help="predict labels for .npy, .csv or image files (or - for CSV on "
                                                    "stdin), or for text (text models)")
    predict.add_argument("model", type=Path, help="model folder, or the run folder holding one")
    predict.add_argument("inputs", nargs="*", help="input files, or - to read CSV rows from stdin; for a text model, "
                                                   "text files with one text per line (- for stdin)")
    predict.add_argument("--text", action="append", metavar="TEXT",
                         help="a text to classify or tag (text models); repeat it for more texts: "
                              "--text A --text B")
    predict.add_argument("--invert", action="store_true", help="invert image brightness (dark digits on light paper)")
    predict.add_argument("--top", type=int, default=3, help="probabilities shown per input, at least 1 (default 3)")
    predict.add_argument("--json", action="store_true", help="print machine-readable JSON")
    predict.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    at_least_one(args.top, "predict --top")

    from lstmkit.tasks import predict_trained

    results = predict_trained(args.model, args.inputs, texts=args.text or [], invert=args.invert)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        if "tokens" in r:
            print(" ".join(f"{token}/{label}" for token, label in zip(r["tokens"], r["labels"])))
        elif "frames" in r:
            k = len(r["frames"])
            print(f"{r['input']}[{r['index']}]\t{k} predicted frame{'s' * (k != 1)} (--json prints their pixels)")
        elif "values" in r:
            rows = r["values"] if isinstance(r["values"], list) else [r["values"]]
            for row in [rows] if not rows or not isinstance(rows[0], list) else rows:  # one line per step
                print(f"{r['input']}[{r['index']}]\t" + " ".join(f"{v:.6g}" for v in row))
        else:
            print(prediction_line(r, args.top))
    return 0
