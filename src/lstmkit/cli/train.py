"""``lstmkit train CONFIG``: train a model from a TOML recipe into a run folder (or ``--resume RUN``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lstmkit.cli._common import default_run_folder
from lstmkit.errors import LstmkitError


def register(subparsers: Any) -> None:
    train = subparsers.add_parser("train", help="train a model from a TOML config")
    train.add_argument("config", nargs="?",
                       help="TOML config, e.g. configs/digits.toml (required, except with --resume RUN, which "
                            "takes none)")
    train.add_argument("--resume", type=Path, metavar="RUN",
                       help="continue the interrupted run folder RUN from its last checkpoint")
    train.add_argument("--nproc", type=int, default=1,
                       help="data-parallel worker processes on this machine (default 1; see docs/tasks.md for torchrun)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.epochs=1 (repeatable)")
    train.add_argument("--out", type=Path, help="run folder (default: runs/CONFIG-TIMESTAMP)")
    train.add_argument("--data-dir", type=Path, help="folder with the dataset's files (sets data.data_dir)")
    train.set_defaults(func=run)


def _train_worker(config: object, out: Path, resume: bool) -> None:
    """One process of a data-parallel run (module level, so ``spawn`` can pickle it)."""
    from lstmkit.train import run_training

    run_training(config, out, resume=resume)


def run(args: argparse.Namespace) -> int:
    from lstmkit.config import apply_overrides, config_from_dict, read_toml
    from lstmkit.task_runs import TASK_MODULES, recipe_task

    overrides = list(args.set or [])
    # The recipe is read once, here, before anything heavy is imported: a missing file answers at once.
    table = None
    if args.resume is None and args.config:
        table = read_toml(args.config)
    elif args.resume is not None and (args.resume / "config.toml").is_file():
        table = read_toml(args.resume / "config.toml")
    task = recipe_task(table)
    if task in TASK_MODULES:
        return _train_task(task, args, overrides, table)
    if args.data_dir:
        overrides.append(f"data.data_dir={json.dumps(str(args.data_dir))}")
    if args.resume:
        if args.config or args.out or overrides:
            raise LstmkitError("train --resume RUN: continues RUN with the config it started with; "
                               "give no CONFIG, --out, --set or --data-dir")
        if table is None:
            raise LstmkitError(f"train --resume {args.resume}: no config.toml and no checkpoints/last.pt to "
                               "continue from (expected a run folder written by lstmkit train)")
        config, out = config_from_dict(table), args.resume
    else:
        if not args.config:
            raise LstmkitError("train: expected a CONFIG file (or --resume RUN)")
        config = config_from_dict(apply_overrides(table, overrides))
        out = args.out or default_run_folder(args.config)
    resume = args.resume is not None
    if args.nproc < 1:
        raise LstmkitError(f"train --nproc: expected a positive number of processes, got {args.nproc}")
    if args.nproc > 1 and config.train.batch_size % args.nproc:  # checked here too, so no worker starts for nothing
        raise LstmkitError(f"config [train] batch_size: expected a multiple of the {args.nproc} processes, "
                           f"got {config.train.batch_size}")

    from lstmkit import distributed
    from lstmkit.train import run_training

    if args.nproc > 1:
        import torch.multiprocessing as mp

        try:
            distributed.launch_local(args.nproc, _train_worker, config, out, resume, device=config.train.device)
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1]
            raise LstmkitError(f"train --nproc {args.nproc}: a worker failed: {last}") from None
        metrics = json.loads((out / "metrics.json").read_text())
    else:
        distributed.init_from_env(config.train.device)  # under torchrun: join the group
        metrics = run_training(config, out, resume=resume).metrics
        if not distributed.is_main_process():
            distributed.shutdown()
            return 0
        distributed.shutdown()
    print((out / "evaluation.txt").read_text(), end="")
    print()
    for key, value in metrics.items():
        if key.startswith("test_") and key != "test_loss":
            print(f"{key} {value:.4f}")
    print(f"train_seconds {metrics['train_seconds']:.1f} ({metrics['epochs_run']} epochs)")
    print(f"run folder: {out}")
    print(f"model folder: {out / 'model'}")
    return 0


def _train_task(task: str, args: argparse.Namespace, overrides: list[str], table: dict[str, Any]) -> int:
    """Recipes whose task trains in its own module (``lstmkit.task_runs``): seq2seq, frames."""
    from lstmkit.task_runs import task_module

    if args.resume or args.nproc > 1 or args.data_dir:
        raise LstmkitError(f"train: a [model] task = \"{task}\" recipe supports neither --resume, --nproc nor "
                           "--data-dir; start a new run")
    module = task_module(task)
    config = module.load_config(args.config, overrides, table=table)
    out = args.out or default_run_folder(args.config)
    metrics = module.run(config, out)
    print((out / "evaluation.txt").read_text(encoding="utf-8"), end="")
    print()
    print(module.summary(metrics))
    print(f"run folder: {out}")
    print(f"model folder: {out / 'model'}")
    return 0
