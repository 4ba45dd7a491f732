"""The training loop: backpropagation through time over shuffled mini-batches, with callbacks and resume.

``Trainer.fit`` runs epochs of: shuffle (a seeded generator), for each batch forward, loss, backward
(BPTT through the LSTM's time loop), clip the global gradient norm, optimiser step, schedule step; then
evaluate on the validation split and hand the epoch's row to the callbacks.

Everything that decides what happens next is part of ``Trainer.state_dict()``: weights, optimiser,
schedule, the epoch's sample order, the position in it, the running sums, the RNG states of Python,
NumPy and PyTorch, and each callback's state. ``load_state_dict`` puts all of it back, so a run killed
mid-epoch and resumed from its last checkpoint ends bit-identical to one that was never interrupted (on
the CPU, with deterministic kernels and the same thread count).

Any task trains here. The training data is either an ``ArrayDataset`` (inputs ``(N, L, F)``, targets and
lengths) or any ``Batches``: a sized collection that cuts a batch out of itself for a tensor of sample
indices (token pairs, generated frame sequences, ...). The objective turns one batch into the loss
(``Objective.step``) and judges the validation split (``Objective.validate``), so the loop itself never
looks inside a batch. ``Batches`` that draw fresh samples every epoch give them through ``for_epoch``,
seeded by the epoch, so a resumed run draws what the uninterrupted one drew.

Data-parallel training (``torch.distributed``): every rank draws the same order, each global batch of
``batch_size`` samples is cut into ``world_size`` equal slices, each rank back-propagates its slice, and
DDP averages the gradients, so the update equals the one-process update on the whole batch.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lstmkit.config import TrainConfig
from lstmkit.data.base import ArrayDataset
from lstmkit.errors import ConfigError
from lstmkit.models.objectives import Objective

__all__ = ["Batches", "TensorBatches", "Callback", "Trainer", "apply_runtime", "make_optimizer", "make_scheduler", "seed_everything", "resolve_device",
           "predict_outputs"]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError('config [train] device: "cuda" was asked for, but PyTorch sees no CUDA device')
    return torch.device(name)


def apply_runtime(config: TrainConfig) -> torch.device:
    """Apply the ``[train]`` settings that hold for the whole process: CPU threads and deterministic
    kernels; return the device to train on."""
    device = resolve_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic:
        if device.type == "cuda":
            # cuBLAS repeats its sums only with a fixed workspace, which must be chosen before its first call.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so a run on the CPU repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A schedule stepped once per batch: cosine decay, step decay or one-cycle; None for ``constant``."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine" and config.max_minutes > 0:
        return None  # the Trainer anneals over the time budget (Trainer._anneal_over_budget)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size * steps_per_epoch,
                                               gamma=config.gamma)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    return None


@runtime_checkable
class Batches(Protocol):
    """Training or validation data as the loop sees it: ``len`` samples, cut into batches by index.

    ``targets`` names the kind of targets (``"classes"``, ``"values"``, ``"pairs"``, ``"frames"``); it must
    match the objective's. Optionally, ``for_epoch(epoch) -> Batches`` gives the samples of one epoch
    (data drawn fresh every epoch, seeded by it).
    """

    targets: str

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor, device: torch.device) -> Any:
        """The samples at ``index`` (a 1-D long tensor), ready for ``Objective.step`` on ``device``."""


class TensorBatches:
    """An ``ArrayDataset`` as ``Batches``: ``(x, y, lengths)`` per batch, x and y on the device (moved once),
    lengths on the CPU (packing wants them there)."""

    def __init__(self, data: ArrayDataset, device: torch.device) -> None:
        self.targets = data.targets
        self.x = torch.from_numpy(data.x).to(device)
        self.y = torch.from_numpy(data.y).to(device)
        self.lengths = None if data.lengths is None else torch.from_numpy(data.lengths)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor,
                                                                        torch.Tensor | None]:
        on_device = index.to(self.x.device)
        return self.x[on_device], self.y[on_device], None if self.lengths is None else self.lengths[index]


@torch.no_grad()
def predict_outputs(module: nn.Module, data: ArrayDataset | np.ndarray | torch.Tensor,
                    lengths: np.ndarray | torch.Tensor | None = None, batch_size: int = 512,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Raw model outputs for prepared inputs ``(N, L, F)``, computed in batches in eval mode, on the CPU."""
    if isinstance(data, ArrayDataset):
        data, lengths = data.x, data.lengths
    was_training = module.training
    module.eval()
    x = torch.as_tensor(data)
    lens = None if lengths is None else torch.as_tensor(lengths)
    outputs = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        lb = None if lens is None else lens[start:start + batch_size]
        outputs.append((module(xb) if lb is None else module(xb, lengths=lb)).cpu())
    module.train(was_training)
    return torch.cat(outputs)


class Callback:
    """Hooks called by ``Trainer.fit``. Override what you need; set ``trainer.stop = True`` to stop.

    ``on_epoch_end`` receives the epoch's row: ``epoch``, ``lr``, ``train_loss``, ``train_<metric>``,
    ``val_loss``, ``val_<metric>`` (with a validation split) and ``seconds``. A callback that must survive
    a resume keeps its state in ``state_dict`` / ``load_state_dict``.
    """

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

log = logging.getLogger(__name__)

_clock = time.perf_counter
"""The wall clock of epoch seconds and of the time budget (``[train] max_minutes``); tests replace it."""
_cpu_clock = time.process_time
"""The CPU clock of ``[train] budget_clock = "cpu"``: this process's CPU seconds, all threads; tests replace it."""


@dataclass
class _Position:
    """Where the loop stands: the epoch in progress and how far into its order it got."""

    epoch: int = 1
    step: int = 0
    order: torch.Tensor | None = None
    sums: dict[str, float] = field(default_factory=dict)
    seen: int = 0
    lr: float = 0.0
    """The learning rate when the epoch began (the epoch's row reports it)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    budget_spent: float = 0.0
    """Seconds of the time budget's clock spent in training batches before the current stretch of batches."""


class Trainer:
    """Train ``module`` under ``objective`` with the ``[train]`` settings in ``config``.

    Args:
        module: the task model; ``module(x, lengths=...)`` gives outputs the objective understands.
        objective: the loss and metrics (``lstmkit.models.objectives``).
        config: the ``[train]`` table (optimiser, schedule, batch size, epochs, clipping, seed).
        callbacks: hooks run around epochs and batches (progress, logging, checkpoints, early stopping).
        device: where the batches and the model live.

    Example::

        trainer = Trainer(module, Classification(), TrainConfig(epochs=3))
        history = trainer.fit(train, val)      # one row per epoch
    """

    def __init__(self, module: nn.Module, objective: Objective, config: TrainConfig,
                 callbacks: Iterable[Callback] = (), device: torch.device | str = "cpu") -> None:
        self.module = module
        self.objective = objective
        self.config = config
        self.callbacks = list(callbacks)
        self.device = torch.device(device)
        self.stop = False
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        if config.batch_size % self.world_size:
            raise ConfigError(f"config [train] batch_size: expected a multiple of the {self.world_size} "
                              f"processes, got {config.batch_size}")
        self.network: nn.Module = module
        if self.distributed:
            self.network = nn.parallel.DistributedDataParallel(module)
        self.optimizer = make_optimizer(module.parameters(), config)
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self._scheduler_built = False
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.position = _Position()

    # ----------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the loop stands (see the module docstring)."""
        p = self.position
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": p.epoch, "step": p.step, "order": p.order, "sums": dict(p.sums), "seen": p.seen,
            "lr": p.lr, "history": list(p.history), "seconds": p.seconds, "budget_spent": p.budget_spent,
            "shuffle_rng": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            # Dropout and zoneout masks on a GPU come from its own generator.
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "callbacks": dict(zip(self._callback_keys(), (cb.state_dict() for cb in self.callbacks))),
        }

    def load_state_dict(self, state: dict[str, Any], steps_per_epoch: int) -> None:
        """Continue from ``state_dict()``'s output (the schedule needs ``steps_per_epoch`` to be rebuilt)."""
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler = make_scheduler(self.optimizer, self.config, steps_per_epoch)
        self._scheduler_built = True
        if state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.position = _Position(epoch=state["epoch"], step=state["step"], order=state["order"],
                                  sums=dict(state["sums"]), seen=state["seen"], lr=state["lr"],
                                  history=list(state["history"]),
                                  seconds=state["seconds"], budget_spent=state.get("budget_spent", 0.0))
        self.shuffle.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        saved = state["callbacks"]
        for key, callback in zip(self._callback_keys(), self.callbacks):
            if key in saved:
                callback.load_state_dict(saved[key])

    def _callback_keys(self) -> list[str]:
        """A stable name per callback (class name, numbered when repeated) to match states on resume."""
        keys, seen = [], {}
        for callback in self.callbacks:
            name = type(callback).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return keys

    # ----------------------------------------------------------------------------------------------------

    def steps_per_epoch(self, n: int) -> int:
        return math.ceil(n / self.config.batch_size)

    def fit(self, train: ArrayDataset | Batches, val: Any = None) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (or until a callback stops it); returns one row per epoch.

        ``train`` is an ``ArrayDataset`` or any ``Batches``; ``val`` is whatever the objective's ``validate``
        judges (an ``ArrayDataset`` for the sequence objectives), or None.
        """
        if train.targets != self.objective.targets:
            raise ConfigError(f"the data has {train.targets} targets, but the model's loss expects "
                              f"{self.objective.targets}; check [model] task and loss")
        tc = self.config
        steps = self.steps_per_epoch(len(train))
        if not self._scheduler_built:
            self.scheduler = make_scheduler(self.optimizer, tc, steps)
            self._scheduler_built = True
        data = TensorBatches(train, self.device) if isinstance(train, ArrayDataset) else train
        for callback in self.callbacks:
            callback.on_fit_start(self)
        p = self.position
        while p.epoch <= tc.epochs and not self.stop:
            started = _clock()
            epoch_data = data.for_epoch(p.epoch) if hasattr(data, "for_epoch") else data
            if p.order is None:
                p.order, p.step, p.sums, p.seen = torch.randperm(len(epoch_data), generator=self.shuffle), 0, {}, 0
                for callback in self.callbacks:
                    callback.on_epoch_start(self, p.epoch)
            if p.step == 0:
                p.lr = self.optimizer.param_groups[0]["lr"]
            self.module.train()
            batches = p.order.split(tc.batch_size)
            out_of_time, budget_clock = False, _cpu_clock if tc.budget_clock == "cpu" else _clock
            stretch_started = budget_clock()
            while p.step < len(batches) and not self.stop:
                if tc.max_minutes > 0 and tc.schedule == "cosine":
                    self._anneal_over_budget(self._budget_used(budget_clock() - stretch_started))
                logs = self._train_step(epoch_data, batches[p.step])
                p.step += 1
                for callback in self.callbacks:
                    callback.on_batch_end(self, p.step, logs)
                if tc.max_minutes > 0 and self._budget_used(budget_clock() - stretch_started) >= 60.0 * tc.max_minutes:
                    out_of_time = True  # close this epoch here: validated, logged, checkpointed, the last
                    break
            p.budget_spent += budget_clock() - stretch_started
            if p.step < len(batches) and not out_of_time:
                break  # stopped mid-epoch by a callback
            if out_of_time:
                log.info("the time budget of %g minutes is spent: training ends after batch %d of epoch %d",
                         tc.max_minutes, p.step, p.epoch)
                self.stop = True
            p.seconds += _clock() - started
            row = self._epoch_row(val)
            p.history.append(row)
            p.epoch, p.order, p.seconds = p.epoch + 1, None, 0.0
            for callback in self.callbacks:
                callback.on_epoch_end(self, row["epoch"], row)
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return p.history

    def _budget_used(self, stretch: float) -> float:
        """Seconds of the time budget used: the batches before this stretch plus ``stretch`` (the budget clock's
        seconds since this stretch of batches began). Ranks agree on the largest."""
        seconds = self.position.budget_spent + stretch
        if self.world_size > 1:
            value = torch.tensor([seconds], dtype=torch.float64)
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
            seconds = float(value)
        return seconds

    def _anneal_over_budget(self, elapsed: float) -> None:
        """Cosine annealing over the time budget: ``lr_t = lr (1 + cos(pi min(t / budget, 1))) / 2``."""
        progress = min(elapsed / (60.0 * self.config.max_minutes), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _train_step(self, data: Batches, batch: torch.Tensor) -> dict[str, float]:
        """Forward, loss, BPTT, clip, step on one global batch (this rank's slice of it)."""
        p, tc = self.position, self.config
        count = len(batch)
        if self.world_size > 1:
            batch = batch.tensor_split(self.world_size)[self.rank]
        loss, stats = self.objective.step(self.network, data.batch(batch, self.device))
        value = float(loss.detach())
        if not math.isfinite(value):  # diverged: stop before the weights (and the next checkpoint) turn to NaN
            raise ConfigError(f"training diverged: the loss is {value} at epoch {p.epoch}, batch {p.step + 1}; lower "
                              f"[train] lr (now {tc.lr:g}) or set [train] grad_clip (now {tc.grad_clip:g}); the "
                              "last checkpoint holds the weights from before")
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks; weight each slice so that uneven last batches still give
        # the gradient of the mean loss over the whole global batch.
        (loss * (len(batch) * self.world_size / count)).backward()
        if tc.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.module.parameters(), tc.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        stats = {"loss": value * len(batch), **stats}
        if self.world_size > 1:
            stats = self._all_reduce(stats)
        for key, value in stats.items():
            p.sums[key] = p.sums.get(key, 0.0) + value
        p.seen += count
        return {"loss": p.sums["loss"] / p.seen, **self.objective.summarize(p.sums, p.seen)}

    def _all_reduce(self, stats: dict[str, float]) -> dict[str, float]:
        keys = sorted(stats)
        values = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        return dict(zip(keys, values.tolist()))

    def _epoch_row(self, val: Any) -> dict[str, Any]:
        p = self.position
        row: dict[str, Any] = {"epoch": p.epoch, "lr": p.lr, "train_loss": p.sums["loss"] / p.seen}
        row.update({f"train_{k}": v for k, v in self.objective.summarize(p.sums, p.seen).items()})
        started = _clock()
        if val is not None:
            row.update({f"val_{k}": v for k, v in self.validate(val).items()})
        row["seconds"] = round(p.seconds + _clock() - started, 3)
        return row

    def validate(self, data: Any) -> dict[str, float]:
        """The objective's validation metrics on ``data`` (for the sequence objectives: the loss and the
        running metrics training reports), computed in eval mode."""
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return self.objective.validate(self.module, data, max(self.config.batch_size, 256), self.device)
        finally:
            self.module.train(was_training)
