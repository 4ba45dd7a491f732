"""The ``lstmkit`` command: parses arguments and calls library functions, nothing more.

User errors (``LstmkitError``) print one line, ``lstmkit: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

from lstmkit import __version__
from lstmkit.errors import LstmkitError

log = logging.getLogger("lstmkit")


def _train_worker(config: object, out: Path, resume: bool) -> None:
    """One process of a data-parallel run (module level, so ``spawn`` can pickle it)."""
    from lstmkit.train import run_training

    run_training(config, out, resume=resume)


def _cmd_train(args: argparse.Namespace) -> int:
    from lstmkit import distributed
    from lstmkit.config import load_config
    from lstmkit.task_runs import TASK_MODULES, recipe_task
    from lstmkit.train import run_training

    overrides = list(args.set or [])
    task = recipe_task(args.resume / "config.toml" if args.resume else args.config)
    if task in TASK_MODULES:
        return _train_task(task, args, overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={json.dumps(str(args.data_dir))}")
    if args.resume:
        if args.config or args.out or overrides:
            raise LstmkitError("train --resume RUN: continues RUN with the config it started with; "
                               "give no CONFIG, --out, --set or --data-dir")
        if not (args.resume / "config.toml").is_file():
            raise LstmkitError(f"train --resume {args.resume}: no config.toml and no checkpoints/last.pt to "
                               "continue from (expected a run folder written by lstmkit train)")
        config, out = load_config(args.resume / "config.toml"), args.resume
    else:
        if not args.config:
            raise LstmkitError("train: expected a CONFIG file (or --resume RUN)")
        config = load_config(args.config, overrides)
        out = args.out or Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    resume = args.resume is not None
    if args.nproc > 1:
        import torch.multiprocessing as mp

        try:
            distributed.launch_local(args.nproc, _train_worker, config, out, resume)
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1]
            raise LstmkitError(f"train --nproc {args.nproc}: a worker failed: {last}") from None
        metrics = json.loads((out / "metrics.json").read_text())
    else:
        distributed.init_from_env()  # under torchrun: join the group
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


def _train_task(task: str, args: argparse.Namespace, overrides: list[str]) -> int:
    """Recipes whose task trains in its own module (``lstmkit.task_runs``): seq2seq, frames."""
    from lstmkit.task_runs import task_module

    if args.resume or args.nproc > 1 or args.data_dir:
        raise LstmkitError(f"train: a [model] task = \"{task}\" recipe supports neither --resume, --nproc nor "
                           "--data-dir; start a new run")
    module = task_module(task)
    config = module.load_config(args.config, overrides)
    out = args.out or Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    metrics = module.run(config, out)
    print((out / "evaluation.txt").read_text(encoding="utf-8"), end="")
    print()
    print(module.summary(metrics))
    print(f"run folder: {out}")
    print(f"model folder: {out / 'model'}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from lstmkit.seq2seq import Translator

    if args.beam < 1:
        raise LstmkitError(f"translate --beam: expected an integer >= 1, got {args.beam}")
    translator = Translator.load(args.model)
    for text in args.texts:
        result = translator.translate(text, beam=args.beam)
        print(result.text if len(args.texts) == 1 else f"{text}\t{result.text}")
        if args.attention:
            print(result.attention_table())
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from lstmkit.config import load_config
    from lstmkit.tune import load_space, tune

    base = load_config(args.config, list(args.set or []))
    space = load_space(args.space, base)
    out = args.out or Path("runs") / f"tune-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = tune(base, space, args.trials, out, storage=args.storage, study_name=args.study)
    print(f"{result.trials} trials ({result.pruned} pruned) in {result.storage}")
    print(f"best value {result.best_value:.4f} with " + ", ".join(f"{k}={v}" for k, v in result.best_params.items()))
    print(f"best recipe: {result.best_config} (train it with: lstmkit train {result.best_config})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lstmkit.data import load_source
    from lstmkit.evaluate import classification_report, format_classification_report
    from lstmkit.model_folder import load_model
    from lstmkit.viz import plot_confusion_matrix

    model = load_model(args.model)
    name = args.data or model.meta.get("data_name")
    if not name:
        raise LstmkitError("evaluate: the model folder does not name its dataset; pass --data NAME")
    source = load_source(name, data_dir=args.data_dir, download=not args.no_download)
    split = source.test if args.split == "test" else source.train
    report = classification_report(split.y, model.predict(split.x), model.label_names)
    if args.plot:
        plot_confusion_matrix(report["confusion_matrix"], model.label_names, args.plot,
                              title=f"{name} {args.split}: confusion matrix")
    if args.json:
        print(json.dumps({"data": name, "split": args.split, **report}, indent=2))
    else:
        print(f"{name} ({args.split} split, {len(split)} samples)")
        print(format_classification_report(report))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from lstmkit.data import read_inputs
    from lstmkit.model_folder import load_model

    model = load_model(args.model)
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
        top = sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[: args.top]
        others = "  ".join(f"{name} {p:.3f}" for name, p in top)
        print(f"{r['input']}[{r['index']}]\t{r['label']}\t{r['probability']:.3f}\t({others})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import numpy as np

    from lstmkit.export import export_onnx

    samples = None
    if args.samples:
        try:
            samples = np.load(args.samples, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise LstmkitError(f"export --samples {args.samples}: expected a .npy array (N, L, F), got {exc}") from None
    result = export_onnx(args.model, args.out, tolerance=args.tolerance, samples=samples, step=not args.no_step)
    checks = ", ".join(f"{name} {diff:.2g}" for name, diff in result.checks.items())
    print(f"wrote {result.path} (predict graph: input (N, L, {_input_size(result.path)}) and lengths (N,))")
    if result.step_path is not None:
        print(f"wrote {result.step_path} (step graph for streaming: input, lengths, h0, c0 -> outputs per step, h_n, c_n)")
    else:
        print(f"no step graph: {result.streaming_unsupported}")
    print(f"verified in ONNX Runtime against PyTorch: max abs difference {result.max_abs_diff:.2g} ({checks})")
    return 0


def _input_size(path: Path) -> int:
    from lstmkit.export import read_onnx_meta

    return int(read_onnx_meta(path)["input_size"])


def _cmd_serve(args: argparse.Namespace) -> int:
    from lstmkit.serve import ServeOptions, serve

    options = ServeOptions(
        max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, max_sequence_length=args.max_sequence_length,
        max_payload_bytes=args.max_payload_bytes, session_ttl=args.session_ttl, max_sessions=args.max_sessions,
        max_queue=args.max_queue,
    )
    serve(args.model, host=args.host, port=args.port, backend=args.backend, options=options, threads=args.threads,
          access_log=args.access_log)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lstmkit.serve.options import ServeOptions as ServeDefaults

    parser = argparse.ArgumentParser(prog="lstmkit", description="Train, evaluate and deploy LSTM models.")
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model from a TOML config")
    train.add_argument("config", nargs="?", help="TOML config, e.g. configs/digits.toml")
    train.add_argument("--resume", type=Path, metavar="RUN",
                       help="continue the interrupted run folder RUN from its last checkpoint")
    train.add_argument("--nproc", type=int, default=1,
                       help="data-parallel worker processes on this machine (default 1; see README for torchrun)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config key, e.g. --set train.epochs=1 (repeatable)")
    train.add_argument("--out", type=Path, help="run folder (default: runs/CONFIG-TIMESTAMP)")
    train.add_argument("--data-dir", type=Path, help="folder with the dataset's files (sets data.data_dir)")
    train.set_defaults(func=_cmd_train)

    translate = sub.add_parser("translate", help="decode text with a seq2seq model folder")
    translate.add_argument("model", type=Path, help="seq2seq model folder, e.g. runs/dates/model")
    translate.add_argument("texts", nargs="+", metavar="TEXT", help="input text(s), e.g. \"3 March 2021\"")
    translate.add_argument("--beam", type=int, default=1, help="beam width (default 1: greedy decoding)")
    translate.add_argument("--attention", action="store_true",
                           help="also print the attention (percent) of each output token over the source tokens")
    translate.set_defaults(func=_cmd_translate)

    tune = sub.add_parser("tune", help="search hyperparameters with Optuna and write the best recipe")
    tune.add_argument("config", help="base TOML config")
    tune.add_argument("--space", type=Path, required=True, help="search space TOML ([train.lr] low/high/log, ...)")
    tune.add_argument("--trials", type=int, default=20, help="trials to run in this process (default 20)")
    tune.add_argument("--out", type=Path, help="folder for study.db, trials.csv and best.toml")
    tune.add_argument("--storage", help="Optuna storage URL shared by several machines (default: sqlite in --out)")
    tune.add_argument("--study", default="lstmkit", help="study name in the storage (default lstmkit)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config key (repeatable)")
    tune.set_defaults(func=_cmd_tune)

    evaluate = sub.add_parser("evaluate", help="evaluate a saved model on a dataset split")
    evaluate.add_argument("model", type=Path, help="model folder, e.g. runs/digits/model")
    evaluate.add_argument("--data", help="data source name (default: the one the model was trained on)")
    evaluate.add_argument("--data-dir", type=Path, help="folder with the dataset's files")
    evaluate.add_argument("--split", choices=["test", "train"], default="test")
    evaluate.add_argument("--no-download", action="store_true", help="never download missing files")
    evaluate.add_argument("--plot", type=Path, help="also write the confusion matrix PNG here")
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    evaluate.set_defaults(func=_cmd_evaluate)

    predict = sub.add_parser("predict", help="predict labels for .npy, .csv or image files (or - for CSV on stdin)")
    predict.add_argument("model", type=Path, help="model folder")
    predict.add_argument("inputs", nargs="+", help="input files, or - to read CSV rows from stdin")
    predict.add_argument("--invert", action="store_true", help="invert image brightness (dark digits on light paper)")
    predict.add_argument("--top", type=int, default=3, help="probabilities shown per input (default 3)")
    predict.add_argument("--json", action="store_true", help="print machine-readable JSON")
    predict.set_defaults(func=_cmd_predict)

    export = sub.add_parser("export", help="export a model folder to ONNX, verified in ONNX Runtime")
    export.add_argument("model", type=Path, help="model folder")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default onnx)")
    export.add_argument("--out", type=Path, required=True,
                        help="the .onnx file to write; a model that can stream also gets NAME.step.onnx beside it")
    export.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest abs difference from PyTorch allowed in verification (default 1e-4)")
    export.add_argument("--samples", type=Path,
                        help="raw inputs to verify on, a .npy array (N, L, F) (default: the model's dataset, else random)")
    export.add_argument("--no-step", action="store_true", help="do not write the step graph for streaming")
    export.set_defaults(func=_cmd_export)

    defaults = ServeDefaults()
    serve = sub.add_parser("serve", help="serve a model over HTTP: batch predictions and streaming sessions")
    serve.add_argument("model", type=Path, help="model folder, or a .onnx file written by `lstmkit export`")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                       help="auto (default): onnx for a .onnx file, torch for a folder; onnx with a folder exports it first")
    serve.add_argument("--max-batch", type=int, default=defaults.max_batch,
                       help=f"most sequences (or sessions) per model call and per predict request (default {defaults.max_batch})")
    serve.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_ms,
                       help=f"how long a batch waits for more requests (default {defaults.batch_wait_ms:g})")
    serve.add_argument("--max-sequence-length", type=int, default=defaults.max_sequence_length,
                       help=f"most steps per sequence or step request (default {defaults.max_sequence_length})")
    serve.add_argument("--max-payload-bytes", type=int, default=defaults.max_payload_bytes,
                       help=f"largest request body (default {defaults.max_payload_bytes})")
    serve.add_argument("--session-ttl", type=float, default=defaults.session_ttl,
                       help=f"seconds an idle session lives (default {defaults.session_ttl:g})")
    serve.add_argument("--max-sessions", type=int, default=defaults.max_sessions,
                       help=f"most open sessions (default {defaults.max_sessions})")
    serve.add_argument("--max-queue", type=int, default=defaults.max_queue,
                       help=f"most sequences or step requests waiting before 503 (default {defaults.max_queue})")
    serve.add_argument("--threads", type=int, default=1,
                       help="CPU threads of each model call (default 1: the event loop needs a core; 0: all cores)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstmkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except LstmkitError as exc:
        print(f"lstmkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lstmkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
