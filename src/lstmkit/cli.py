"""The ``lstmkit`` command: parses arguments and calls library functions, nothing more.

User errors (``LstmkitError``) print one line, ``lstmkit: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import logging
import os
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
    recipe = args.resume / "config.toml" if args.resume else args.config
    try:
        task = recipe_task(recipe)
    except RecursionError:  # the recipe is peeked at before the guarded loader reads it
        raise LstmkitError(f"config file {recipe}: not valid TOML (arrays or tables nested too deeply)") from None
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
    if args.nproc < 1:
        raise LstmkitError(f"train --nproc: expected a positive number of processes, got {args.nproc}")
    if args.nproc > 1:
        import torch.multiprocessing as mp

        if config.train.batch_size % args.nproc:  # checked here too, so no worker is started for nothing
            raise LstmkitError(f"config [train] batch_size: expected a multiple of the {args.nproc} processes, "
                               f"got {config.train.batch_size}")

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


def _cmd_longlag(args: argparse.Namespace) -> int:
    from lstmkit.config import load_config
    from lstmkit.data import load_source
    from lstmkit.data.longlag import TASKS, evaluate_criterion
    from lstmkit.model import Model
    from lstmkit.train import run_training

    overrides = list(args.set or [])
    if args.length is not None:
        overrides.append(f"data.length={args.length}")
    if args.samples is not None:
        overrides.append(f"data.samples={args.samples}")
    if args.variant:
        overrides.append(f"model.{args.variant}=true")
    if args.rnn:
        overrides.append("model.task=rnn-regressor" if _task_targets(args.config, overrides) == "values"
                         else "model.task=rnn-classifier")
    config = load_config(args.config, overrides)
    if config.data.name not in TASKS:
        raise LstmkitError(f"longlag: expected a config whose [data] name is one of {', '.join(TASKS)}, "
                           f"got {config.data.name!r}")
    out = args.out or Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    result = run_training(config, out)
    seconds = time.perf_counter() - started
    source = load_source(config.data.name, config=config.data)
    report = evaluate_criterion(config.data.name, Model.load(result.model_dir), source.test)
    report.update({"task": config.data.name, "length": config.data.length, "model": config.model.task,
                   "wall_seconds": round(seconds, 1), "epochs_run": result.metrics["epochs_run"]})
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


def _task_targets(config_path: str, overrides: list[str]) -> str:
    """Whether the config's task model trains on "classes" or "values" (to pick the RNN counterpart)."""
    from lstmkit.config import load_config
    from lstmkit.models import model_objective

    return model_objective(load_config(config_path, overrides).model).targets


def _refuse_forecaster(meta: dict, folder: Path, command: str) -> None:
    if "forecast" in meta:
        raise LstmkitError(f"{command} {folder}: expected a classifier's model folder, got a forecaster's; "
                           f"use lstmkit forecast {folder} (--backtest compares with the actual values)")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lstmkit.data import load_source
    from lstmkit.evaluate import classification_report, format_classification_report
    from lstmkit.model import Model
    from lstmkit.model_folder import load_model
    from lstmkit.models.objectives import Classification
    from lstmkit.viz import plot_confusion_matrix

    loaded = load_model(args.model)
    _refuse_forecaster(loaded.meta, args.model, "evaluate")
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


def _cmd_predict(args: argparse.Namespace) -> int:
    from lstmkit.data import read_inputs
    from lstmkit.model_folder import load_model

    model = load_model(args.model)
    _refuse_forecaster(model.meta, args.model, "predict")
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
        top = sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[: args.top]
        others = "  ".join(f"{name} {p:.3f}" for name, p in top)
        print(f"{r['input']}[{r['index']}]\t{r['label']}\t{r['probability']:.3f}\t({others})")
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
            top = sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[: args.top]
            others = "  ".join(f"{name} {p:.3f}" for name, p in top)
            print(f"{r['input']}[{r['index']}]\t{r['label']}\t{r['probability']:.3f}\t({others})")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from lstmkit.text_inference import TextModel

    text = TextModel.load(args.model).generate(args.prompt, args.length, args.temperature, args.seed)
    print(args.prompt + text)
    return 0


def _cmd_forecast(args: argparse.Namespace) -> int:
    from lstmkit.forecasting import forecast_from_model, write_forecast

    result = forecast_from_model(args.model, horizon=args.horizon, input=args.input, backtest=args.backtest)
    out = args.out or Path("forecast.csv")
    png = out.with_suffix(".png")
    write_forecast(result, out, png, title=f"{args.model}: {len(result.forecast)}-step forecast")
    print(f"wrote {out} ({len(result.forecast)} steps of {len(result.names)} series) and {png}")
    for name, metrics in result.metrics.items():
        print(f"{name:<16}" + "   ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
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
    import os

    from lstmkit.serve import ServeOptions, serve

    options = ServeOptions(
        max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, max_sequence_length=args.max_sequence_length,
        max_payload_bytes=args.max_payload_bytes, session_ttl=args.session_ttl, max_sessions=args.max_sessions,
        max_queue=args.max_queue, max_concurrency=args.max_concurrency, request_timeout=args.request_timeout,
        rate_limit=args.rate_limit, rate_burst=args.rate_burst,
        api_key=args.api_key if args.api_key is not None else (os.environ.get("LSTMKIT_API_KEY") or None),
        insecure=args.insecure, access_log=args.access_log, header_timeout=args.header_timeout,
        body_timeout=args.body_timeout, max_connections=args.max_connections,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    serve(args.model, host=args.host, port=args.port, backend=args.backend, options=options, threads=args.threads)
    return 0


def _load_signal(path: Path | None):
    import numpy as np

    from lstmkit.errors import ReportError

    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ReportError(f"--signal {path}: expected a .npy array (samples, L) or (L,), got {exc}") from None


def _cmd_report(args: argparse.Namespace) -> int:
    from lstmkit.report import parse_indices, write_report

    samples = parse_indices(args.samples, "report --samples")
    units = parse_indices(args.units, "report --units") if args.units else None
    path = write_report(args.run, samples=samples, signal=_load_signal(args.signal), units=units)
    print(f"wrote {path}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from lstmkit.report import inspect_input, parse_indices

    units = parse_indices(args.units, "inspect --units") if args.units else None
    path = inspect_input(args.model, args.input, units=units, out_dir=args.out, signal=_load_signal(args.signal))
    print(f"wrote {path}")
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
    longlag = sub.add_parser("longlag", help="train on a long-time-lag task of the 1997 LSTM paper and judge it "
                                             "by the paper's criterion")
    longlag.add_argument("config", help="a long-lag recipe, e.g. configs/adding.toml")
    longlag.add_argument("--length", type=int, help="minimal sequence length T (sets data.length)")
    longlag.add_argument("--samples", type=int, help="training sequences (sets data.samples)")
    longlag.add_argument("--rnn", action="store_true",
                         help="train a plain tanh RNN (rnn-regressor / rnn-classifier) under the same budget instead")
    longlag.add_argument("--variant", choices=["peephole", "coupled_gates", "layer_norm"],
                         help="an LSTM variant to switch on (sets model.VARIANT=true)")
    longlag.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="override a config key, e.g. --set model.zoneout=0.1 (repeatable)")
    longlag.add_argument("--out", type=Path, help="run folder (default: runs/CONFIG-TIMESTAMP)")
    longlag.set_defaults(func=_cmd_longlag)

    evaluate = sub.add_parser("evaluate", help="evaluate a saved model on a dataset split")
    evaluate.add_argument("model", type=Path, help="model folder, e.g. runs/digits/model")
    evaluate.add_argument("--data", help="data source name (default: the one the model was trained on)")
    evaluate.add_argument("--data-dir", type=Path, help="folder with the dataset's files")
    evaluate.add_argument("--split", choices=["test", "train"], default="test")
    evaluate.add_argument("--no-download", action="store_true", help="never download missing files")
    evaluate.add_argument("--plot", type=Path, help="also write the confusion matrix PNG here")
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    evaluate.set_defaults(func=_cmd_evaluate)

    predict = sub.add_parser("predict", help="predict labels for .npy, .csv or image files (or - for CSV on stdin), "
                                              "or for text (text models)")
    predict.add_argument("model", type=Path, help="model folder")
    predict.add_argument("inputs", nargs="*", help="input files, or - to read CSV rows from stdin; for a text model, "
                                                   "text files with one text per line (- for stdin)")
    predict.add_argument("--text", action="append", metavar="TEXT",
                         help="a text to classify or tag (text models; repeatable)")
    predict.add_argument("--invert", action="store_true", help="invert image brightness (dark digits on light paper)")
    predict.add_argument("--top", type=int, default=3, help="probabilities shown per input (default 3)")
    predict.add_argument("--json", action="store_true", help="print machine-readable JSON")
    predict.set_defaults(func=_cmd_predict)

    generate = sub.add_parser("generate", help="continue a prompt with a char-lm model, sampling step by step")
    generate.add_argument("model", type=Path, help="model folder of a char-lm model")
    generate.add_argument("--prompt", required=True, help="the text to continue (at least one character)")
    generate.add_argument("--length", type=int, default=200, help="characters to generate (default 200)")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="sampling temperature: lower is more conservative, 0 always takes the likeliest "
                               "(default 1.0)")
    generate.add_argument("--seed", type=int, default=0,
                          help="random seed; the same seed gives the same text (default 0)")
    generate.set_defaults(func=_cmd_generate)

    forecast = sub.add_parser("forecast", help="forecast with a forecaster's model folder; writes a CSV and a PNG")
    forecast.add_argument("model", type=Path, help="model folder of a run on a forecasting source")
    forecast.add_argument("--horizon", type=int, default=None,
                          help="steps to forecast (default: the model's horizon; longer ones feed forecasts back)")
    forecast.add_argument("--input", type=Path,
                          help="CSV or Parquet series laid out as the training data (default: the model's own series)")
    forecast.add_argument("--backtest", action="store_true",
                          help="hold out the last HORIZON points and forecast them, to compare with the actuals")
    forecast.add_argument("--out", type=Path,
                          help="CSV to write (default forecast.csv); the plot goes beside it as .png")
    forecast.set_defaults(func=_cmd_forecast)

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

    report = sub.add_parser("report", help="write RUN/report.html: curves, evaluation, gate and cell-state views")
    report.add_argument("run", type=Path, help="run folder written by lstmkit train")
    report.add_argument("--samples", default="0,1,2", help="test-split indices to look inside (default 0,1,2)")
    report.add_argument("--signal", type=Path, help="a .npy array (samples, L) or (L,) to rank units against")
    report.add_argument("--units", help="units to plot in every layer, e.g. 3,7 (default: the top-ranked ones)")
    report.set_defaults(func=_cmd_report)

    inspect = sub.add_parser("inspect", help="gate and cell-state views of one input file (as predict reads it)")
    inspect.add_argument("model", type=Path, help="model folder")
    inspect.add_argument("input", help="input file: .npy, .csv or an image")
    inspect.add_argument("--units", help="units to plot, e.g. 3,7 (default: the widest-ranging ones)")
    inspect.add_argument("--signal", type=Path, help="a .npy array (samples, L) or (L,) to rank units against")
    inspect.add_argument("--out", type=Path, help="output folder (default: inspect-STEM beside the input)")
    inspect.set_defaults(func=_cmd_inspect)

    defaults = ServeDefaults()
    serve = sub.add_parser("serve", help="serve a model over HTTP: batch predictions and streaming sessions")
    serve.add_argument("model", type=Path, help="model folder, or a .onnx file written by `lstmkit export`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; any other needs an API key or --insecure)")
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
    serve.add_argument("--max-concurrency", type=int, default=defaults.max_concurrency,
                       help=f"most requests in progress before 503 (default {defaults.max_concurrency})")
    serve.add_argument("--request-timeout", type=float, default=defaults.request_timeout,
                       help=f"seconds a request may take before 504 (default {defaults.request_timeout:g}; 0: no limit)")
    serve.add_argument("--rate-limit", type=float, default=defaults.rate_limit,
                       help="requests per second per client address before 429 (default 0: no limit)")
    serve.add_argument("--rate-burst", type=int, default=defaults.rate_burst,
                       help=f"requests a client may send at once under --rate-limit (default {defaults.rate_burst})")
    serve.add_argument("--header-timeout", type=float, default=defaults.header_timeout,
                       help=f"seconds for a request's headers to arrive (default {defaults.header_timeout:g}; 0: no limit)")
    serve.add_argument("--body-timeout", type=float, default=defaults.body_timeout,
                       help=f"seconds for a request's body to arrive, then 408 (default {defaults.body_timeout:g}; 0: no limit)")
    serve.add_argument("--max-connections", type=int, default=defaults.max_connections,
                       help=f"most open connections before 503 (default {defaults.max_connections})")
    serve.add_argument("--forwarded-allow-ips", default=None,
                       help="addresses of the reverse proxies whose X-Forwarded-For is trusted (default: none)")
    serve.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every request but /healthz "
                                         "(default: the LSTMKIT_API_KEY environment variable, which ps cannot show)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without an API key")
    serve.add_argument("--access-log", action="store_true",
                       help="log one JSON line per request to stderr (method, path, status, duration, client)")
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
    except BrokenPipeError:
        # Whatever read the output has stopped (`lstmkit predict ... | head`): end quietly, as cat and grep do.
        # Standard output points at /dev/null from here, so the interpreter's last flush cannot fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            raise
        # A full disk, a quota or a read-only file system: what to free or fix, not a traceback.
        where = f" {exc.filename}" if exc.filename else ""
        print(f"lstmkit: error: cannot write{where} ({exc.strerror or exc})", file=sys.stderr)
        return 2


_STORAGE_ERRORS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


if __name__ == "__main__":
    sys.exit(main())
