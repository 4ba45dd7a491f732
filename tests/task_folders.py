"""Tiny model folders of every sequence task, for the export and serving tests: built untrained in a blink
(regressor, text models, next-symbols) or trained for one epoch on the bundled airline series (forecaster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lstmkit.artifacts.model_folder import save_model
from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.data.text import Tokenizer
from lstmkit.models import InputSpec, build_model

TEXTS = ["the film was great", "a dull film , far too long", "Ada lives in Paris", "Grace Hopper moved to Oslo ."]
TAGS = ["O", "B-PER", "I-PER", "B-LOC"]
REGRESSOR_FEATURES = 3


def regressor_folder(path: Path, seed: int = 0, **model_options) -> Path:
    """A variable-length regressor of 3 features and 2 values, with a standardizer."""
    torch.manual_seed(seed)
    spec = InputSpec(input_size=REGRESSOR_FEATURES, num_outputs=2, sequence_length=None)
    config = Config(model=ModelConfig(task="regressor", hidden_size=8, **model_options))
    module = build_model(config.model, spec).eval()
    x = np.random.default_rng(seed).normal(3.0, 2.0, size=(16, 9, REGRESSOR_FEATURES)).astype(np.float32)
    return save_model(path, module, config, spec, [], Standardizer().fit(x), extra_meta={"targets": "values"})


def text_folder(path: Path, task: str, seed: int = 0, **model_options) -> Path:
    """A ``text-classifier``, ``tagger`` or ``char-lm`` over a word (char for char-lm) vocabulary of ``TEXTS``."""
    torch.manual_seed(seed)
    level = "char" if task == "char-lm" else "word"
    tokenizer = Tokenizer.fit(TEXTS, level=level, lowercase=False)
    labels = {"text-classifier": ["low", "high"], "tagger": TAGS, "char-lm": list(tokenizer.vocab)}[task]
    config = Config(model=ModelConfig(task=task, vocab_size=len(tokenizer), embedding_size=6, hidden_size=8,
                                      **model_options))
    spec = InputSpec(input_size=1, num_outputs=len(labels))
    module = build_model(config.model, spec).eval()
    return save_model(path, module, config, spec, labels, None,
                      extra_meta={"tokenizer": tokenizer.to_dict(), "targets": "classes"})


def next_symbols_folder(path: Path, seed: int = 0) -> Path:
    """A next-symbols model over 7 one-hot symbols (the embedded Reber grammar's alphabet)."""
    torch.manual_seed(seed)
    config = Config(model=ModelConfig(task="next-symbols", hidden_size=6))
    spec = InputSpec(input_size=7, num_outputs=1)
    module = build_model(config.model, spec).eval()
    return save_model(path, module, config, spec, [], None, extra_meta={"targets": "values"})


def forecaster_folder(out: Path, *overrides: str) -> Path:
    """``configs/airline.toml`` trained for one epoch with LSTM(8): log, lag-1 differencing, window 36, H 12
    (``overrides``: more ``--set`` items, such as ``data.level=12``)."""
    from lstmkit.cli import main

    configs = Path(__file__).parent.parent / "configs"
    extra = [word for item in overrides for word in ("--set", item)]
    status = main(["train", str(configs / "airline.toml"), "--out", str(out), "--set", "train.epochs=1",
                   "--set", "model.hidden_size=8", "--set", "train.progress=false",
                   "--set", "train.tensorboard=false", "--set", "train.report=false",
                   "--set", "train.statistical=false", *extra])  # AutoETS/AutoARIMA: tests/test_forecasting.py
    assert status == 0
    return out / "model"


def write_ragged_panel(path: Path, count: int = 12, seed: int = 0, short: bool = True) -> Path:
    """A long CSV of ``count`` monthly series of different lengths (48-95 points), start months and scales
    (10 to 10^4), each with its own trend and a 12-month season proportional to its level (multiplicative, so
    log-seasonal); with ``short``, also a series ``tiny`` of 20 points, too short for window 24 + horizon 12."""
    import csv

    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        length, start = int(rng.integers(48, 96)), int(rng.integers(0, 36))
        t = np.arange(length)
        log_y = (np.log(10.0 * 10 ** (3 * i / max(count - 1, 1))) + rng.uniform(-0.01, 0.02) * t
                 + rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * (start + t) / 12 + rng.uniform(0, 0.5))
                 + 0.02 * rng.standard_normal(length))
        rows += [(start + j, f"s{i}", f"{np.exp(v):.6g}") for j, v in enumerate(log_y)]
    if short:
        rows += [(j, "tiny", f"{50 + 5 * np.sin(j):.4g}") for j in range(20)]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["month", "id", "value"])
        writer.writerows(sorted(rows, key=lambda r: (r[0], r[1])))
    return path


def counts(length: int, mean: float, seed: int) -> np.ndarray:
    """Monthly counts with a strong season, Poisson noise and, for small means, zeros."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return rng.poisson(mean * (1 + 0.9 * np.sin(2 * np.pi * t / 12))).astype(np.float64)


def write_count_panel(path: Path, count: int = 10) -> Path:
    """A long CSV of ``count`` monthly count series of 72 points, means 0.5 to 0.5 * 2^(count-1): the small ones
    mostly zeros and ones (``[data] log_offset``)."""
    import csv

    rows = []
    for i in range(count):
        mean = 0.5 * 2.0 ** i  # 0.5 to 256: the small ones are mostly zeros and ones
        rows += [(t, f"c{i}", f"{v:g}") for t, v in enumerate(counts(72, mean, 100 + i))]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["month", "id", "value"])
        writer.writerows(rows)
    return path


POOLED_SETTINGS = ["data.name=series", "data.pooled=true", "data.log=true", "data.level=12", "data.window=24",
                   "data.horizon=12", "data.season=12", "data.val_fraction=0.1", "model.task=forecaster"]
"""``--set`` items of a pooled run on ``write_ragged_panel``'s file (with ``data.path``)."""


def pooled_forecaster_folder(out: Path, panel: Path, *overrides: str, epochs: int = 40) -> Path:
    """A pooled forecaster (``[data] pooled = true``) trained on ``panel`` with LSTM(16); returns the run folder."""
    from lstmkit.cli import main

    settings = [*POOLED_SETTINGS, f"data.path={panel}", f"train.epochs={epochs}", "model.hidden_size=16",
                "train.lr=0.01", "train.progress=false", "train.tensorboard=false", "train.report=false",
                "train.statistical=false", "train.num_threads=1", *overrides]
    config = out.parent / f"{out.name}.toml"
    config.write_text("# settings come from --set\n")
    status = main(["train", str(config), "--out", str(out), *[w for item in settings for w in ("--set", item)]])
    assert status == 0
    return out
