"""Template: how to add a task. Copy this module, rename the task, and fill in each part.

A task is one module that registers a ``Task``: its config, its data as ``Batches``, its network and
objective, its test evaluation and model folder, its loaded form and its schema. Everything else (the
training loop, resume, ``--nproc``, tune, checkpoints, the run folder, the manifest, ``lstmkit.load``,
``lstmkit evaluate``) comes from the protocol. To make ``lstmkit train`` find a new task, add its module to
``lstmkit.tasks.TASK_MODULES``; this template is left out, so it registers only when imported::

    import lstmkit.tasks.template                       # registers "recall"
    from lstmkit.runs.train import run_task
    from lstmkit.tasks import task_named

    task = task_named("recall")
    run_task(task.load_config(None, ["train.epochs=3"]), "runs/recall")
    lstmkit.load("runs/recall").predict([[1, 0, 0], [0, 1]])   # -> [1, 0]

The task itself: recall the first bit of a bit string after reading all of it, one bit per step (a small
memory task); the LSTM's last hidden state feeds one logit, ``loss = BCE(sigmoid(z), first bit)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import torch
from torch import nn

from lstmkit.config import TrainConfig, apply_overrides, build_config, tomllib
from lstmkit.errors import DataError
from lstmkit.artifacts.model_folder import load_weights, read_model_folder, write_model_folder
from lstmkit.models.objectives import Objective
from lstmkit.nn import LSTM
from lstmkit.tasks import Evaluation, Job, Task, metrics_text, register_task
from lstmkit.tasks.schema import Port, Schema

__all__ = ["RecallTask", "RecallModel"]


# 1. The config: one dataclass per table, strict (unknown keys and wrong types are errors naming the key).
@dataclass
class RecallData:
    samples: int = field(default=2000, metadata={"min": 1})
    length: int = field(default=12, metadata={"min": 1})


@dataclass
class RecallNet:
    task: Literal["recall"] = "recall"
    hidden_size: int = field(default=16, metadata={"min": 1})


@dataclass
class RecallConfig:
    data: RecallData = field(default_factory=RecallData)
    model: RecallNet = field(default_factory=RecallNet)
    train: TrainConfig = field(default_factory=TrainConfig)


def _bits(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, length)).astype(np.float32)
    return torch.from_numpy(x).unsqueeze(-1), torch.from_numpy(x[:, 0].copy())  # (N, L, 1), (N,)


# 2. The data as Batches: a sized collection that cuts a batch out of itself by index.
class BitStrings:
    targets = "recall"

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index].to(device), self.y[index].to(device)


# 3. The network and the objective (the loss of one batch, the running metrics, validation).
class RecallModel(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.lstm = LSTM(1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)  # (N, L, H)
        return self.head(output[:, -1]).squeeze(-1)  # (N,) logits


class RecallObjective(Objective):
    targets = "recall"
    monitor = "val_accuracy"

    def step(self, network: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        logits = network(x)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
        return loss, {"correct": float(((logits.detach() > 0).float() == y).sum())}

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        return {"accuracy": stats.get("correct", 0.0) / max(count, 1)}

    def validate(self, module: nn.Module, data: Any, batch_size: int, device: torch.device) -> dict[str, float]:
        return {"accuracy": float(((module(data.x.to(device)) > 0).float().cpu() == data.y).float().mean())}


# 4. The loaded form: what lstmkit.load returns.
class RecallPredictor:
    def __init__(self, model: RecallModel) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def predict(self, strings: Iterable[Iterable[int]]) -> list[int]:
        out = []
        for bits in strings:
            bits = [int(b) for b in bits]
            if not bits or set(bits) - {0, 1}:
                raise DataError(f"recall input: expected a non-empty string of 0s and 1s, got {bits}")
            x = torch.tensor(bits, dtype=torch.float32).view(1, -1, 1)
            out.append(int(self.model(x).item() > 0))
        return out


# 5. The task: prepare a run, finish it (test evaluation + model folder), load, evaluate, schema.
@register_task("recall")
class RecallTask(Task):
    verbs = "lstmkit.load(MODEL).predict(bit strings) in Python"

    def config_from_table(self, table: dict[str, Any], overrides: Iterable[str] = ()) -> RecallConfig:
        return build_config(RecallConfig, apply_overrides(table, overrides))

    def prepare(self, config: RecallConfig) -> Job:
        d, seed = config.data, config.train.seed
        train, val, test = (BitStrings(*_bits(n, d.length, seed + k)) for k, n in enumerate(
            (d.samples, max(d.samples // 10, 1), max(d.samples // 10, 1))))
        model = RecallModel(config.model.hidden_size)

        def finish(run: Any) -> dict[str, Any]:
            accuracy = RecallObjective().validate(model, test, 0, torch.device("cpu"))["accuracy"]
            run.evaluation_txt.write_text(f"test accuracy {accuracy:.4f} ({len(test)} strings)\n")
            write_model_folder(run.model, model.state_dict(), self.dump_config(config), {"task": "recall"})
            return {"test_accuracy": accuracy}

        return Job(config=config, module=model, objective=RecallObjective(), train=train, val=val, finish=finish)

    def load(self, folder: Path) -> RecallPredictor:
        contents = read_model_folder(folder)
        config = self.config_from_table(tomllib.loads(contents.config_text))
        return RecallPredictor(load_weights(lambda: RecallModel(config.model.hidden_size), contents))

    def evaluate(self, folder: Path, split: str = "test", data: str | None = None, data_dir: Path | None = None,
                 download: bool = True) -> Evaluation:
        predictor = self.load(folder)
        contents = read_model_folder(folder)
        config = self.config_from_table(tomllib.loads(contents.config_text))
        x, y = _bits(max(config.data.samples // 10, 1), config.data.length, config.train.seed + 2)
        accuracy = float(np.mean(np.array(predictor.predict(x[..., 0].int().tolist())) == y.numpy()))
        report = {"data": "recall", "split": split, "accuracy": accuracy}
        return Evaluation(report, metrics_text(f"recall ({split} split, {len(y)} strings)", report))

    def schema(self, meta: dict[str, Any], config: RecallConfig) -> Schema:
        return Schema(inputs=(Port("bits", "int64", ("N", "L"), "strings of 0s and 1s"),),
                      outputs=(Port("recall", "int64", ("N",), "the first bit of each string"),))
