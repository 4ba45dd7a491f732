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
