"""Seconds per Fashion-MNIST training epoch: lstmkit's recipe against the seed's Keras model, same run.

The Keras model is the seed example: ``LSTM(128, activation="relu")`` + ``Dense(10, softmax)``, Adam,
batch 128, pixels scaled to [0, 1]. lstmkit runs ``configs/fashion_mnist.toml``'s model through the same
``train_epoch`` the CLI uses, and also the seed's relu cell (which takes lstmkit's reference path, since
PyTorch's fused kernel only has tanh). The implementations are interleaved, one epoch each per round,
after a warm-up, and the table reports medians, min-max and the ratio to Keras.

Run (needs TensorFlow: ``make bench``, or ``pip install -e .[bench]``):

    python bench/fashion_epoch.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, markdown_table, summarize  # noqa: E402

from lstmkit.config import load_config  # noqa: E402
from lstmkit.data import Standardizer, load_source  # noqa: E402
from lstmkit.data import ArrayDataset  # noqa: E402
from lstmkit.models import InputSpec, build_model, model_objective  # noqa: E402
from lstmkit.training.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).parent.parent


def keras_seed_model():
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.Input((28, 28)),
        tf.keras.layers.LSTM(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def lstmkit_epoch_runner(config, x, y):
    spec = InputSpec(input_size=28, num_outputs=10, sequence_length=28, image_shape=(28, 28))
    torch.manual_seed(0)
    module = build_model(config.model, spec)
    config.train.progress = False
    config.train.epochs = 1
    trainer = Trainer(module, model_objective(config.model), config.train)

    def run(limit: int | None = None) -> None:
        """One epoch (or ``limit`` batches) of the loop ``lstmkit train`` runs, without validation."""
        n = len(y) if limit is None else limit * config.train.batch_size
        trainer.position.epoch, trainer.stop = 1, False  # run epoch 1 again each call
        trainer.fit(ArrayDataset(x[:n], y[:n]))

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    source = load_source("fashion-mnist")
    x_raw, y = source.train.x, source.train.y
    x_keras = (x_raw / 255.0).astype(np.float32)
    x_std = Standardizer().fit(x_raw).transform(x_raw)

    recipe = load_config(ROOT / "configs" / "fashion_mnist.toml", ["train.epochs=1"])
    relu = load_config(ROOT / "configs" / "fashion_mnist.toml",
                       ["train.epochs=1", "model.cell_activation=relu", "model.hidden_activation=relu"])
    keras_model = keras_seed_model()
    runners = {
        "Keras seed model: LSTM(128, relu) + Dense(softmax)": lambda limit=None: keras_model.fit(
            x_keras[: None if limit is None else limit * 128], y[: None if limit is None else limit * 128],
            batch_size=128, epochs=1, verbose=0),
        "lstmkit configs/fashion_mnist.toml (fused path)": lstmkit_epoch_runner(recipe, x_std, y),
        "lstmkit, seed's relu cell (reference path)": lstmkit_epoch_runner(relu, x_std, y),
    }
    for run in runners.values():  # warm-up: graph tracing, oneDNN primitive creation
        run(20)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    keras_median = summarize(times[next(iter(runners))])["median"]
    rows = []
    for name, samples in times.items():
        s = summarize(samples)
        rows.append({"implementation": name, "s/epoch (median)": f"{s['median']:.2f}",
                     "min-max": f"{s['min']:.2f}-{s['max']:.2f}", "vs Keras": f"{s['median'] / keras_median:.2f}x"})
    info = machine_info()
    print(f"Fashion-MNIST, 60,000 training images, batch 128, {args.rounds} interleaved rounds")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print()
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "seconds": times}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
