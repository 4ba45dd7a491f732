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
    from lstmkit.runs.train import run_task

    run_task(config, out, resume=resume)


def run(args: argparse.Namespace) -> int:
    from lstmkit.config import read_toml
    from lstmkit.runs.folder import RunFolder
    from lstmkit.tasks import recipe_config, table_task

    overrides = list(args.set or [])
    if args.data_dir:
        overrides.append(f"data.data_dir={json.dumps(str(args.data_dir))}")
    if args.resume:
        if args.config or args.out or overrides:
            raise LstmkitError("train --resume RUN: continues RUN with the config it started with; "
                               "give no CONFIG, --out, --set or --data-dir")
        run_folder = RunFolder(args.resume)
        run_folder.require_resumable()
        recipe, out = run_folder.config, args.resume
    else:
        if not args.config:
            raise LstmkitError("train: expected a CONFIG file (or --resume RUN)")
        recipe, out = Path(args.config), args.out or default_run_folder(args.config)
    # The recipe is read once, here, and checked by its task's strict schema before anything heavy is
    # imported: a missing file or a bad key answers at once.
    table = read_toml(recipe)
    config = recipe_config(table, overrides)
    resume = args.resume is not None
    if args.nproc < 1:
        raise LstmkitError(f"train --nproc: expected a positive number of processes, got {args.nproc}")
    if args.nproc > 1 and config.train.batch_size % args.nproc:  # checked here too, so no worker starts for nothing
        raise LstmkitError(f"config [train] batch_size: expected a multiple of the {args.nproc} processes, "
                           f"got {config.train.batch_size}")

    from lstmkit.runs.train import run_task
    from lstmkit.training import distributed

    task = table_task(table, overrides)
    if args.nproc > 1:
        import torch.multiprocessing as mp

        try:
            distributed.launch_local(args.nproc, _train_worker, config, out, resume, device=config.train.device)
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1]
            raise LstmkitError(f"train --nproc {args.nproc}: a worker failed: {last}") from None
        metrics = json.loads(RunFolder(out).metrics_json.read_text())
    else:
        distributed.init_from_env(config.train.device)  # under torchrun: join the group
        metrics = run_task(config, out, resume=resume, task=task).metrics
        if not distributed.is_main_process():
            distributed.shutdown()
            return 0
        distributed.shutdown()
    run_folder = RunFolder(out)
    print(run_folder.evaluation_txt.read_text(encoding="utf-8"), end="")
    print()
    print(task.summary(metrics))
    print(f"run folder: {out}")
    print(f"model folder: {run_folder.model}")
    return 0
