"""``lstmkit tune CONFIG --space SPACE``: search hyperparameters with Optuna and write the best recipe."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lstmkit.cli._common import default_run_folder


def register(subparsers: Any) -> None:
    tune = subparsers.add_parser("tune", help="search hyperparameters with Optuna and write the best recipe")
    tune.add_argument("config", help="base TOML config")
    tune.add_argument("--space", type=Path, required=True, help="search space TOML ([train.lr] low/high/log, ...)")
    tune.add_argument("--trials", type=int, default=20, help="trials to run in this process (default 20)")
    tune.add_argument("--out", type=Path, help="folder for study.db, trials.csv and best.toml")
    tune.add_argument("--storage", help="Optuna storage URL shared by several machines (default: sqlite in --out)")
    tune.add_argument("--study", default="lstmkit", help="study name in the storage (default lstmkit)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config key (repeatable)")
    tune.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.tasks import load_recipe

    _, base = load_recipe(args.config, list(args.set or []))  # any task's recipe, read once

    from lstmkit.runs.tune import load_space, tune

    space = load_space(args.space, base)
    out = args.out or default_run_folder(args.config, prefix="tune-")
    result = tune(base, space, args.trials, out, storage=args.storage, study_name=args.study)
    print(f"{result.trials} trials ({result.pruned} pruned) in {result.storage}")
    print(f"best value {result.best_value:.4f} with " + ", ".join(f"{k}={v}" for k, v in result.best_params.items()))
    print(f"best recipe: {result.best_config} (train it with: lstmkit train {result.best_config})")
    return 0
