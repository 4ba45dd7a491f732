"""``lstmkit evaluate MODEL``: a classifier's metrics on a split of its dataset (or another)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lstmkit.cli._common import refuse_forecaster
from lstmkit.errors import LstmkitError


def register(subparsers: Any) -> None:
    evaluate = subparsers.add_parser("evaluate", help="evaluate a saved model on a dataset split")
    evaluate.add_argument("model", type=Path, help="model folder, e.g. runs/digits/model")
    evaluate.add_argument("--data", help="data source name (default: the one the model was trained on)")
    evaluate.add_argument("--data-dir", type=Path, help="folder with the dataset's files")
    evaluate.add_argument("--split", choices=["test", "train"], default="test",
                          help="the split of the dataset to evaluate on (default test)")
    evaluate.add_argument("--no-download", action="store_true", help="never download missing files")
    evaluate.add_argument("--plot", type=Path, help="also write the confusion matrix PNG here")
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.data import load_source
    from lstmkit.evaluate import classification_report, format_classification_report
    from lstmkit.model import Model
    from lstmkit.model_folder import load_model
    from lstmkit.models.objectives import Classification
    from lstmkit.viz import plot_confusion_matrix

    loaded = load_model(args.model)
    refuse_forecaster(loaded.meta, args.model, "evaluate")
    model = Model.from_loaded(loaded)
    if type(model.objective) is not Classification:
        raise LstmkitError(f"evaluate {args.model}: reports a classifier's metrics, and this model is a "
                           f"[model] task = {model.config.model.task!r} model; its run folder's evaluation.txt "
                           "and metrics.json hold its own metrics")
    name = args.data or model.meta.get("data_name")
    if not name:
        raise LstmkitError("evaluate: the model folder does not name its dataset; pass --data NAME")
    # The dataset it was trained on is read with the [data] table it was trained with (file, columns, ...).
    config = model.config.data if name == model.config.data.name else None
    source = load_source(name, data_dir=args.data_dir, download=not args.no_download, config=config)
    split = source.test if args.split == "test" else source.train
    report = classification_report(split.y, model.predict(split.x, split.lengths), model.label_names)
    if args.plot:
        plot_confusion_matrix(report["confusion_matrix"], model.label_names, args.plot,
                              title=f"{name} {args.split}: confusion matrix")
    if args.json:
        print(json.dumps({"data": name, "split": args.split, **report}, indent=2))
    else:
        print(f"{name} ({args.split} split, {len(split)} samples)")
        print(format_classification_report(report))
    return 0
