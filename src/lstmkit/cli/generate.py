"""``lstmkit generate MODEL --prompt TEXT``: continue a prompt with a char-lm model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    generate = subparsers.add_parser("generate", help="continue a prompt with a char-lm model, sampling step by step")
    generate.add_argument("model", type=Path, help="model folder of a char-lm model")
    generate.add_argument("--prompt", required=True, help="the text to continue (at least one character)")
    generate.add_argument("--length", type=int, default=200, help="characters to generate (default 200)")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="sampling temperature: lower is more conservative, 0 always takes the likeliest "
                               "(default 1.0)")
    generate.add_argument("--seed", type=int, default=0,
                          help="random seed; the same seed gives the same text (default 0)")
    generate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.tasks.text import TextModel

    text = TextModel.load(args.model).generate(args.prompt, args.length, args.temperature, args.seed)
    print(args.prompt + text)
    return 0
