"""``lstmkit translate MODEL TEXT...``: decode text with a seq2seq model folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstmkit.cli._common import at_least_one


def register(subparsers: Any) -> None:
    translate = subparsers.add_parser("translate", help="decode text with a seq2seq model folder")
    translate.add_argument("model", type=Path, help="seq2seq model folder, e.g. runs/dates/model")
    translate.add_argument("texts", nargs="+", metavar="TEXT", help="input text(s), e.g. \"3 March 2021\"")
    translate.add_argument("--beam", type=int, default=1, help="beam width (default 1: greedy decoding)")
    translate.add_argument("--attention", action="store_true",
                           help="also print the attention (percent) of each output token over the source tokens")
    translate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    at_least_one(args.beam, "translate --beam")

    from lstmkit.tasks.seq2seq import Translator

    translator = Translator.load(args.model)
    for text in args.texts:
        result = translator.translate(text, beam=args.beam)
        print(result.text if len(args.texts) == 1 else f"{text}\t{result.text}")
        if args.attention:
            print(result.attention_table())
    return 0
