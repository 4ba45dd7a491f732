"""``lstmkit longlag CONFIG``: train on a long-time-lag task of the 1997 LSTM paper and judge it by the
paper's criterion (``lstmkit.data.longlag``)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from lstmkit.cli._common import default_run_folder
from lstmkit.errors import LstmkitError


def register(subparsers: Any) -> None:
    longlag = subparsers.add_parser("longlag", help="train on a long-time-lag task of the 1997 LSTM paper and "
                                                    "judge it by the paper's criterion")
    longlag.add_argument("config", help="a long-lag recipe, e.g. configs/adding.toml")
    longlag.add_argument("--length", type=int, help="minimal sequence length T (sets data.length)")
    longlag.add_argument("--samples", type=int, metavar="N", help="training sequences (sets data.samples)")
    longlag.add_argument("--rnn", action="store_true",
                         help="train a plain tanh RNN (rnn-regressor / rnn-classifier) under the same budget instead")
    longlag.add_argument("--variant", choices=["peephole", "coupled_gates", "layer_norm"],
                         help="an LSTM variant to switch on (sets model.VARIANT=true)")
    longlag.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="override a config key, e.g. --set model.zoneout=0.1 (repeatable)")
    longlag.add_argument("--out", type=Path, help="run folder (default: runs/CONFIG-TIMESTAMP)")
    longlag.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lstmkit.config import apply_overrides, config_from_dict, read_toml

    table = read_toml(args.config)
    overrides = list(args.set or [])
    if args.length is not None:
        overrides.append(f"data.length={args.length}")
    if args.samples is not None:
        overrides.append(f"data.samples={args.samples}")
    if args.variant:
        overrides.append(f"model.{args.variant}=true")
    config = config_from_dict(apply_overrides(table, overrides))

    from lstmkit.data.longlag import TASKS, judge_model, rnn_counterpart
    from lstmkit.runs.train import run_training

    if args.rnn:
        overrides.append(f"model.task={rnn_counterpart(config.model)}")
        config = config_from_dict(apply_overrides(table, overrides))
    if config.data.name not in TASKS:
        raise LstmkitError(f"longlag: expected a config whose [data] name is one of {', '.join(TASKS)}, "
                           f"got {config.data.name!r}")
    out = args.out or default_run_folder(args.config)
    started = time.perf_counter()
    result = run_training(config, out)
    seconds = time.perf_counter() - started
    report = judge_model(config, result.model_dir)
    report.update({"wall_seconds": round(seconds, 1), "epochs_run": result.metrics["epochs_run"]})
    (out / "criterion.json").write_text(json.dumps(report, indent=2) + "\n")
    length = "" if config.data.name == "embedded-reber" else f" T={config.data.length or 100}"
    print(f"{config.data.name}{length} {config.model.task}: "
          f"{'SOLVED' if report['solved'] else 'not solved'} by the 1997 criterion")
    print(f"  {report['criterion']}")
    detail = (f"MSE {report['mse']:.4g}" if "mse" in report
              else f"step accuracy {report['step_accuracy']:.4f}, penultimate symbol right in "
                   f"{report['penultimate_correct']:.4f}")
    print(f"  wrong {report['wrong']} of {report['sequences']} test sequences, {detail}")
    print(f"  {result.metrics['epochs_run']} epochs, {seconds:.0f} s; run folder: {out}")
    return 0
