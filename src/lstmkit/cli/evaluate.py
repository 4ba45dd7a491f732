"""``lstmkit evaluate MODEL``: any task's metrics on a split of its dataset (or, for sequence models, another)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError


def register(subparsers: Any) -> None:
    evaluate = subparsers.add_parser("evaluate", help="evaluate a saved model on a dataset split")
    evaluate.add_argument("model", type=Path, help="model folder or the run folder holding one, e.g. runs/digits")
    evaluate.add_argument("--data", help="data source name (default: the one the model was trained on)")
    evaluate.add_argument("--data-dir", type=Path, help="folder with the dataset's files")
    evaluate.add_argument("--split", choices=["test", "train"], default="test",
                          help="the split of the dataset to evaluate on (default test)")
    evaluate.add_argument("--no-download", action="store_true", help="never download missing files")
    evaluate.add_argument("--plot", type=Path, help="also write the confusion matrix PNG here")
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.tasks import evaluate_trained

    result = evaluate_trained(args.model, split=args.split, data=args.data, data_dir=args.data_dir,
                              download=not args.no_download)
    if args.plot:
        if result.confusion is None:
            raise LstmkitError(f"evaluate --plot: only a classifier has a confusion matrix to plot, and "
                               f"{args.model} holds another kind of model")
        from lstmkit.report.plots import plot_confusion_matrix

        matrix, names = result.confusion
        plot_confusion_matrix(matrix, names, args.plot, title=f"{result.report['data']} {args.split}: confusion matrix")
    print(json.dumps(result.report, indent=2) if args.json else result.text)
    return 0
