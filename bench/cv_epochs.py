"""Choose a UCR/UEA recipe's epoch count by stratified k-fold cross-validation on its training split alone.

The test file is never opened. The recipe's ``*_TRAIN.ts`` (aeon's bundled copy, or ``--train-file``) is cut
into ``--folds`` stratified folds (scikit-learn's ``StratifiedKFold``, shuffled with ``--split-seed``). For each
fold and each candidate epoch count, ``lstmkit train RECIPE`` runs exactly as the README gives it, with the
other folds as its training split and the held-out fold as its "test" split: the fold files are written as
long-format CSV and read by the ``ucr`` source (``--set data.name=ucr --set data.path=...``); every other
setting is the recipe's, so normalisation is fitted on the fold's training part only. The score of a
candidate is its validation accuracy pooled over the folds (the fraction of the training series it got
right when held out; with equal fold sizes this is the mean fold accuracy):

    score(E) = (1 / N) * sum_k  correct_k(E)

and the choice is the candidate with the highest score, ties going to the smaller epoch count.

    python bench/cv_epochs.py configs/arrowhead_lstm_fcn.toml --candidates 300 600 1000 --folds 4 --jobs 2

Writes ``--out``/cv.json (every run's accuracy, command and wall time) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import machine_info

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from lstmkit.config import read_toml
from lstmkit.data.tsfile import read_ts
from lstmkit.data.ucr import BUNDLED, aeon_data_dir


def train_file(recipe: Path, given: Path | None) -> Path:
    """The recipe's training file: ``given``, or the bundled ``ARCHIVE_TRAIN.ts`` its ``[data] name`` names."""
    if given is not None:
        return given
    name = read_toml(recipe)["data"]["name"]
    if name not in BUNDLED or aeon_data_dir() is None:
        sys.exit(f"cv_epochs: {recipe} reads {name!r}, not a bundled UCR/UEA set (or aeon is missing); "
                 "pass --train-file NAME_TRAIN.ts")
    return aeon_data_dir() / BUNDLED[name] / f"{BUNDLED[name]}_TRAIN.ts"


def write_long_csv(path: Path, series, indices) -> None:
    """Series ``indices`` of a ``TimeSeriesFile`` as long-format CSV (id, time, f0.., label); real steps only."""
    features = series.x.shape[2]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "time", *(f"f{j}" for j in range(features)), "label"])
        for i in indices:
            for t in range(int(series.lengths[i])):
                writer.writerow([i, t, *(repr(float(v)) for v in series.x[i, t]), series.labels[i]])


def make_folds(series, folds: int, split_seed: int, folder: Path) -> list[tuple[Path, int]]:
    """Write fold k's training part and held-out part as ``fold{k}_TRAIN.csv`` / ``fold{k}_TEST.csv``."""
    from sklearn.model_selection import StratifiedKFold

    folder.mkdir(parents=True, exist_ok=True)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=split_seed)
    written = []
    for k, (train_idx, held_idx) in enumerate(splitter.split(series.x[:, 0, 0], series.labels)):
        write_long_csv(folder / f"fold{k}_TRAIN.csv", series, train_idx)
        write_long_csv(folder / f"fold{k}_TEST.csv", series, held_idx)
        written.append((folder / f"fold{k}_TRAIN.csv", len(held_idx)))
    return written


def run_fold(recipe: Path, fold: int, data: Path, held: int, epochs: int, out: Path, extra: list[str]) -> dict:
    """One ``lstmkit train`` on a fold at ``epochs``; its held-out accuracy, command and wall time."""
    settings = ["data.name=ucr", f"data.path={data}", f"train.epochs={epochs}", "train.num_threads=1",
                "train.report=false", "train.tensorboard=false", *extra]
    run_dir = out / f"fold{fold}-e{epochs}"
    command = [sys.executable, "-m", "lstmkit", "train", str(recipe), "--out", str(run_dir)]
    for setting in settings:
        command += ["--set", setting]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy = float(metrics["test_accuracy"])  # the held-out fold, written as the run's "test" split
    print(f"fold {fold} epochs {epochs}: held-out accuracy {accuracy:.4f} ({seconds:.0f} s)", flush=True)
    return {"fold": fold, "epochs": epochs, "held_out": held, "accuracy": accuracy,
            "correct": round(accuracy * held), "wall_seconds": round(seconds, 1),
            "train_seconds": metrics.get("train_seconds"),
            "command": "lstmkit train " + " ".join([str(recipe)] + [f"--set {s}" for s in settings])}


def choose(runs: list[dict], candidates: list[int]) -> tuple[int, dict[int, float]]:
    """Pooled held-out accuracy of each candidate; the best, ties to the smaller epoch count."""
    scores = {}
    for epochs in candidates:
        mine = [r for r in runs if r["epochs"] == epochs]
        scores[epochs] = sum(r["correct"] for r in mine) / sum(r["held_out"] for r in mine)
    best = max(sorted(candidates), key=lambda e: (scores[e], -e))
    return best, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--candidates", type=int, nargs="+", default=[300, 600, 1000])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the stratified fold shuffle")
    parser.add_argument("--train-file", type=Path, help="the training .ts file (default: aeon's bundled copy)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for every run, e.g. train.seed=1")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "cv-epochs")
    args = parser.parse_args()
    recipe = args.recipe.resolve()
    source = train_file(recipe, args.train_file)
    series = read_ts(source)
    folds = make_folds(series, args.folds, args.split_seed, args.out / "folds")
    jobs = [(k, path, held, epochs) for epochs in sorted(args.candidates, reverse=True) for k, (path, held) in enumerate(folds)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda j: run_fold(recipe, j[0], j[1], j[2], j[3], args.out, args.set), jobs))
    best, scores = choose(runs, args.candidates)
    results = {"recipe": str(args.recipe), "train_file": str(source), "series": len(series.labels),
               "folds": args.folds, "split_seed": args.split_seed, "candidates": sorted(args.candidates),
               "extra_settings": args.set, "scores": scores, "choice": best,
               "wall_seconds": round(time.perf_counter() - started, 1), "machine": machine_info(),
               "load_average_at_end": os.getloadavg(), "runs": runs}
    (args.out / "cv.json").write_text(json.dumps(results, indent=2))
    print(f"\n{args.recipe}: {args.folds}-fold stratified CV on {len(series.labels)} training series "
          f"({source.name}); wall {results['wall_seconds']:.0f} s\n")
    print("| epochs | " + " | ".join(f"fold {k}" for k in range(args.folds)) + " | pooled held-out accuracy |")
    print("|---|" + "---|" * args.folds + "---|")
    for epochs in sorted(args.candidates):
        row = sorted((r for r in runs if r["epochs"] == epochs), key=lambda r: r["fold"])
        print(f"| {epochs} | " + " | ".join(f"{r['correct']}/{r['held_out']}" for r in row)
              + f" | {scores[epochs]:.4f} |")
    print(f"\nchoice (highest pooled accuracy, ties to fewer epochs): {best} epochs")


if __name__ == "__main__":
    main()
