"""``lstmkit predict MODEL INPUT...``: labels and probabilities for input files, stdin, or texts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lstmkit.cli._common import at_least_one, prediction_line, refuse_forecaster
from lstmkit.errors import LstmkitError


def register(subparsers: Any) -> None:
    predict = subparsers.add_parser("predict", help="predict labels for .npy, .csv or image files (or - for CSV on "
                                                    "stdin), or for text (text models)")
    predict.add_argument("model", type=Path, help="model folder")
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

    from lstmkit.data import read_inputs
    from lstmkit.model_folder import load_model

    model = load_model(args.model)
    refuse_forecaster(model.meta, args.model, "predict")
    if args.text or "tokenizer" in model.meta:
        return _predict_text(args, model)
    if not args.inputs:
        raise LstmkitError("predict: expected input files (or - for CSV on stdin)")
    length, features = model.input_shape
    image_shape = model.meta.get("image_shape")
    results = []
    for source in args.inputs:
        x = read_inputs(source, length, features, image_shape=tuple(image_shape) if image_shape else None,
                        pixel_max=model.meta.get("pixel_max"), invert=args.invert)
        probs = model.predict_proba(x)
        for index, row in enumerate(probs):
            best = int(row.argmax())
            results.append({
                "input": str(source), "index": index, "label": model.label_names[best],
                "probability": float(row[best]),
                "probabilities": {name: float(p) for name, p in zip(model.label_names, row)},
            })
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(prediction_line(r, args.top))
    return 0


def _read_text_lines(source: str) -> list[str]:
    if source == "-":
        return [line for line in sys.stdin.read().splitlines() if line.strip()]
    try:
        return [line for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise LstmkitError(f"predict {source}: expected a UTF-8 text file, one text per line ({exc})") from None


def _predict_text(args: argparse.Namespace, loaded: object) -> int:
    from lstmkit.text_inference import TextModel

    model = TextModel.from_loaded(loaded, args.model)
    items = [("--text", i, text) for i, text in enumerate(args.text or [])]
    for source in args.inputs:
        items += [(source, i, text) for i, text in enumerate(_read_text_lines(source))]
    if not items:
        raise LstmkitError("predict: expected --text TEXT or text files (one text per line)")
    results = [{"input": source, "index": i, "text": text, **r}
               for (source, i, text), r in zip(items, model.predict([text for _, _, text in items]))]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        if "tokens" in r:
            print(" ".join(f"{token}/{label}" for token, label in zip(r["tokens"], r["labels"])))
        else:
            print(prediction_line(r, args.top))
    return 0
