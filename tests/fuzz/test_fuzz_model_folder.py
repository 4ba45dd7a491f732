"""Fuzzing the model-folder loader and the checkpoint reader (issue 17 items 1 and 7).

Each example damages one file of a saved folder and has the manifest vouch for it (as an attacker would),
or damages a checkpoint's bytes: loading must succeed or raise one clear line, never a traceback, a hang or a
large allocation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fuzz_harness import MAX_ALLOCATION, check_entry_point, fuzz_settings, mutated, write
from lstmkit.training.checkpoints import CheckpointError, dumps, loads
from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.errors import ModelFolderError
from lstmkit.artifacts.model_folder import load_model, save_model, write_manifest
from lstmkit.models import InputSpec, build_model

SPEC = InputSpec(input_size=3, num_outputs=2, sequence_length=4)


@pytest.fixture(scope="module")
def folder(workdir: Path) -> tuple[Path, dict[str, bytes]]:
    torch.manual_seed(0)
    config = Config(model=ModelConfig(hidden_size=4))
    x = np.random.default_rng(0).normal(size=(8, 4, 3)).astype(np.float32)
    path = save_model(workdir / "model", build_model(config.model, SPEC), config, SPEC, ["a", "b"],
                      Standardizer().fit(x))
    return path, {name: (path / name).read_bytes() for name in ("config.toml", "meta.json", "model.safetensors")}


JSON_EDITS = st.sampled_from([
    ("label_names", 5), ("label_names", ["a"]), ("label_names", ["a", 1]), ("num_outputs", 10**9),
    ("input_size", -1), ("input_size", "3"), ("sequence_length", 0), ("image_shape", [1]), ("standardizer", []),
    ("standardizer", {"mean": [1], "std": [0]}), ("format_version", 2), ("num_outputs", True),
])


@pytest.mark.slow
@fuzz_settings()
@given(name=st.sampled_from(["config.toml", "meta.json", "model.safetensors"]), data=st.data())
def test_load_a_damaged_folder_the_manifest_vouches_for(folder, name, data):
    path, good = folder
    for other, content in good.items():
        write(path / other, content)
    if name == "meta.json" and data.draw(st.booleans()):
        meta = json.loads(good[name])
        key, value = data.draw(JSON_EDITS)
        meta[key] = value
        write(path / name, json.dumps(meta))
    else:
        write(path / name, data.draw(mutated(good[name], max_ops=3)))
    write_manifest(path)
    check_entry_point("model_folder", lambda: load_model(path), error=ModelFolderError, mentions=[str(path)],
                      max_allocation=MAX_ALLOCATION)


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    random.seed(1)
    model = torch.nn.LSTM(2, 3)
    return dumps({"model": model.state_dict(), "python_rng": random.getstate(), "numpy_rng": np.random.get_state(),
                  "history": [{"epoch": 1, "loss": 0.5}], "order": torch.arange(5), "betas": (0.9, 0.99)})


@pytest.mark.slow
@fuzz_settings()
@given(data=st.data())
def test_read_a_damaged_checkpoint(checkpoint, data):
    damaged = data.draw(st.one_of(mutated(checkpoint, max_ops=3), st.binary(max_size=64)))
    check_entry_point("checkpoint", lambda: loads(damaged, "last.pt"), error=CheckpointError, mentions=["last.pt"],
                      max_allocation=MAX_ALLOCATION)
