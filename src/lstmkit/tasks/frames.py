"""Frame sequences: train a ConvLSTM encoder-forecaster on Moving digits and judge it against copy-last-frame.

The ``frames`` task (``[model] task = "frames"``, e.g. ``lstmkit train configs/moving_digits.toml``), trained
in the one training loop like every task (``FramesObjective``). Every epoch draws ``data.samples`` fresh
training sequences from the generator, seeded by the run's seed and the epoch (so a resumed run draws what
the uninterrupted one drew) (``lstmkit.data.moving_digits``, training digit images); validation and test sequences
are fixed, drawn from the digit source's held-out test images. The model sees ``input_frames`` frames and
predicts the next ``output_frames``; the loss is per-pixel binary cross-entropy (Shi et al.) or MSE.

Reported on the test sequences, always beside the copy-last-frame baseline (the last input frame
repeated ``output_frames`` times) and, for scale, an all-black forecast:

- ``test_mse`` / ``baseline_mse`` / ``blank_mse``: mean squared error per pixel, frames in 0..1;
- ``test_ssim`` / ``baseline_ssim`` / ``blank_ssim``: mean structural similarity (``ssim``) over predicted
  frames. Moving-digits frames are mostly black, so a black forecast already scores a high SSIM, and a
  faint uniform haze a very low one (SSIM's constants are small against a 0.04 grey);
- ``test_mse_by_step``, ``test_ssim_by_step`` and the same for the baseline: the metrics of predicted
  frame 1, 2, ..., ``output_frames`` (whether the near future is learned; evaluation.txt has the table).

The run folder (``lstmkit.runs.folder``) holds ``evaluation.txt`` and ``frames.png`` (input, predicted and
true frames of a few test sequences) beside the files every run has.

``lstmkit.load(folder).predict(frames)`` forecasts from input frames ``(N, L, 1, H, W)`` in 0..1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lstmkit.config import tomllib
from lstmkit.data.moving_digits import digit_images, moving_digits
from lstmkit.errors import ConfigError, DataError, LstmkitError, ModelFolderError
from lstmkit.artifacts.model_folder import load_weights, read_model_folder, write_model_folder
from lstmkit.models.frame_forecaster import ConvLSTMForecaster
from lstmkit.models.objectives import Objective
from lstmkit.tasks import Evaluation, Job, Task, register_task
from lstmkit.tasks.schema import Port, Schema
from lstmkit.tasks.frames_config import FramesConfig, FramesDataConfig, FramesModelConfig, config_from_table

__all__ = ["FramesConfig", "FramesDataConfig", "FramesModelConfig", "load_config", "run", "summary", "ssim",
           "FramesTask", "FramesObjective", "FrameForecaster",
           "copy_last_frame", "frame_metrics", "frame_loss", "evaluation_text"]


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> FramesConfig:
    """A strict ``FramesConfig`` from a TOML recipe and ``--set`` overrides."""
    return FramesTask().load_config(path, overrides)


# --------------------------------------------------------------------------------------------------------
# Metrics


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> Tensor:
    """The 1-D Gaussian window (size,), summing to 1; the 2-D window is its outer product with itself."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         chunk: int = 256) -> Tensor:
    r"""Structural similarity (Wang et al., 2004) of each pair of single-channel images, shape (...,).

    .. math::
        \mathrm{SSIM}(x, y) = \operatorname{mean}_{\text{windows}}
            \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}

    with Gaussian-weighted local statistics (an 11x11 window, :math:`\sigma = 1.5`, no padding),
    :math:`C_1 = (0.01 R)^2`, :math:`C_2 = (0.03 R)^2` and :math:`R` = ``data_range``. Identical images give 1.
    Computed in float64, the Gaussian blur as two 1-D convolutions (the same window, separated), ``chunk``
    images at a time (PyTorch's float64 convolution unrolls its input: one 11x11 pass over 1,280 frames of
    64x64 took gigabytes and minutes).

    ``x`` and ``y``: tensors of the same shape (..., H, W), H and W at least ``window``.
    """
    if x.shape != y.shape or x.dim() < 2:
        raise ValueError(f"ssim: expected two tensors of one shape (..., H, W), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    batch_shape = x.shape[:-2]
    x = x.detach().reshape(-1, 1, *x.shape[-2:])
    y = y.detach().reshape(-1, 1, *y.shape[-2:])
    g = _gaussian_window(window, sigma, torch.float64)
    rows, cols = g.view(1, 1, window, 1), g.view(1, 1, 1, window)
    blur = lambda t: F.conv2d(F.conv2d(t, rows), cols)  # noqa: E731
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for a, b in zip(x.split(chunk), y.split(chunk)):
        a, b = a.double(), b.double()
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        scores.append(score.mean(dim=(1, 2, 3)))
    return torch.cat(scores).reshape(batch_shape).float()


def copy_last_frame(inputs: Tensor, future: int) -> Tensor:
    """The baseline forecast: the last input frame (N, L, ...) repeated ``future`` times, (N, future, ...)."""
    return inputs[:, -1:].expand(-1, future, *inputs.shape[2:])


def frame_metrics(predicted: Tensor, target: Tensor, by_step: bool = False) -> dict[str, Any]:
    """MSE per pixel and mean SSIM over frames of ``predicted`` against ``target`` (N, K, C, H, W) in 0..1.

    With ``by_step=True`` also ``mse_by_step`` and ``ssim_by_step``: lists of K values, one per predicted
    frame (horizon 1..K), each averaged over the sequences.
    """
    scores = ssim(predicted, target)  # (N, K, C)
    metrics: dict[str, Any] = {"mse": float(F.mse_loss(predicted, target)), "ssim": float(scores.mean())}
    if by_step:
        errors = (predicted - target).pow(2).transpose(0, 1).flatten(1).mean(1)  # (K,)
        metrics["mse_by_step"] = [round(float(v), 6) for v in errors]
        metrics["ssim_by_step"] = [round(float(v), 4) for v in scores.transpose(0, 1).flatten(1).mean(1)]
    return metrics


def frame_loss(predicted: Tensor, target: Tensor, loss: str) -> Tensor:
    """``bce`` (per-pixel binary cross-entropy, the frames read as pixel probabilities) or ``mse`` of
    predicted frames in 0..1 against the true frames."""
    if loss == "bce":
        return F.binary_cross_entropy(predicted.clamp(1e-6, 1 - 1e-6), target)
    return F.mse_loss(predicted, target)


# --------------------------------------------------------------------------------------------------------
# Training


def _sequences(images: np.ndarray, n: int, seed: Iterable[int], d: FramesDataConfig) -> Tensor:
    frames = moving_digits(images, n, np.random.default_rng(list(seed)), length=d.input_frames + d.output_frames,
                           frame_size=d.frame_size, num_digits=d.num_digits, speed=d.speed)
    return torch.from_numpy(frames).unsqueeze(2)  # (N, L, 1, H, W)


def build_model(config: FramesModelConfig) -> ConvLSTMForecaster:
    return ConvLSTMForecaster(1, config.hidden_channels, config.kernel_size, config.patch, head=config.head,
                              warp_kernel=config.warp_kernel)


@torch.no_grad()
def forecast(model: ConvLSTMForecaster, inputs: Tensor, future: int, batch_size: int = 32) -> Tensor:
    """Predicted frames in 0..1 (N, future, C, H, W) for input frames (N, L, C, H, W)."""
    model.eval()
    return torch.cat([model(chunk, future) for chunk in inputs.split(batch_size)])


class FramesObjective(Objective):
    """Per-pixel loss of the predicted frames (``frame_loss``); validation MSE and SSIM against the truth.
    A batch is a tensor of whole sequences (N, L_in + L_out, 1, H, W); the best epoch has the lowest
    validation MSE."""

    targets = "frames"
    monitor = "val_mse"

    def __init__(self, input_frames: int, output_frames: int, loss: str) -> None:
        self.input_frames, self.output_frames, self.name = input_frames, output_frames, loss

    def step(self, network: nn.Module, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        split = self.input_frames
        return frame_loss(network(batch[:, :split], self.output_frames), batch[:, split:], self.name), {}

    def summarize(self, stats: dict[str, float], count: int) -> dict[str, float]:
        return {}

    def validate(self, module: nn.Module, data: Tensor, batch_size: int, device: torch.device) -> dict[str, float]:
        split = self.input_frames
        predicted = forecast(module, data[:, :split].to(device), self.output_frames).cpu()
        return frame_metrics(predicted, data[:, split:])

    def higher_is_better(self, metric: str) -> bool:
        return metric.endswith("ssim")


class FreshSequences:
    """Training ``Batches`` drawn anew every epoch: ``samples`` sequences seeded by ``(seed, 100 + epoch)``."""

    targets = "frames"

    def __init__(self, images: np.ndarray, config: FramesDataConfig, seed: int) -> None:
        self.images, self.config, self.seed = images, config, seed
        self.sequences: Tensor | None = None

    def __len__(self) -> int:
        return self.config.samples

    def for_epoch(self, epoch: int) -> FreshSequences:
        epoch_data = FreshSequences(self.images, self.config, self.seed)
        epoch_data.sequences = _sequences(self.images, self.config.samples, (self.seed, 100 + epoch), self.config)
        return epoch_data

    def batch(self, index: Tensor, device: torch.device) -> Tensor:
        assert self.sequences is not None, "FreshSequences.batch before for_epoch"
        return self.sequences[index].to(device)


@register_task("frames")
class FramesTask(Task):
    """ConvLSTM encoder-forecaster on Moving digits (see the module docstring)."""

    verbs = "lstmkit predict MODEL FRAMES.npy, or lstmkit.load(MODEL).predict(frames) in Python"
    predicts_files = True

    def predict_inputs(self, folder: Path, sources: list[str], texts: list[str], invert: bool = False) -> list[dict]:
        """The next frames for each ``.npy`` of input frames, ``(N, L, 1, H, W)`` or one sequence ``(L, 1, H, W)``
        or ``(L, H, W)``, values in 0..1: one record per sequence with ``frames``, ``(K, 1, H, W)`` as lists."""
        from lstmkit.data.inputs import read_npy_array

        if texts or not sources:
            raise LstmkitError(f"predict {folder}: expected .npy files of input frames (N, L, 1, H, W), got "
                               f"{'texts' if texts else 'none'}")
        forecaster = FrameForecaster.load(folder)
        records: list[dict] = []
        for source in sources:
            frames = np.asarray(read_npy_array(source), dtype=np.float32)
            if frames.ndim == 3:
                frames = frames[:, None]  # (L, H, W) -> (L, 1, H, W)
            if frames.ndim == 4:
                frames = frames[None]  # one sequence
            predicted = forecaster.predict(frames)
            records += [{"input": str(source), "index": i, "frames": p.tolist()} for i, p in enumerate(predicted)]
        return records

    def config_from_table(self, table: dict[str, Any], overrides: Iterable[str] = ()) -> FramesConfig:
        return config_from_table(table, overrides)

    def prepare(self, config: FramesConfig) -> Job:
        tc, d, mc = config.train, config.data, config.model
        train_images, test_images = digit_images(d.source, d.digit_size)
        val = _sequences(test_images, d.val_samples, (tc.seed, 1), d)
        test = _sequences(test_images, d.test_samples, (tc.seed, 2), d)
        model = build_model(mc)

        def finish(run: Any) -> dict[str, Any]:
            split = d.input_frames
            inputs, target = test[:, :split], test[:, split:]
            predicted = forecast(model, inputs, d.output_frames)
            ours = frame_metrics(predicted, target, by_step=True)
            baseline = frame_metrics(copy_last_frame(inputs, d.output_frames), target, by_step=True)
            blank = frame_metrics(torch.zeros_like(target), target)
            metrics = {"test_mse": ours["mse"], "baseline_mse": baseline["mse"], "test_ssim": ours["ssim"],
                       "baseline_ssim": baseline["ssim"], "blank_mse": blank["mse"], "blank_ssim": blank["ssim"],
                       "test_mse_by_step": ours["mse_by_step"], "baseline_mse_by_step": baseline["mse_by_step"],
                       "test_ssim_by_step": ours["ssim_by_step"], "baseline_ssim_by_step": baseline["ssim_by_step"],
                       "test_sequences": len(test)}
            from lstmkit.report.seq_plots import plot_frames

            plot_frames(inputs[:3, :, 0].numpy(), predicted[:3, :, 0].numpy(), target[:3, :, 0].numpy(),
                        run.frames_png, title="Moving digits: input, predicted, true")
            run.evaluation_txt.write_text(evaluation_text(len(test), d, ours, baseline, blank), encoding="utf-8")
            _save_model(run.model, model, config)
            return metrics

        return Job(config=config, module=model, objective=FramesObjective(d.input_frames, d.output_frames, mc.loss),
                   train=FreshSequences(train_images, d, tc.seed), val=val, finish=finish)

    def load(self, folder: Path) -> FrameForecaster:
        return FrameForecaster.load(folder)

    def schema(self, meta: dict[str, Any], config: FramesConfig) -> Schema:
        d = config.data
        size = d.frame_size
        return Schema(inputs=(Port("frames", "float32", ("N", "L", 1, size, size), "input frames in 0..1"),),
                      outputs=(Port("frames", "float32", ("N", d.output_frames, 1, size, size),
                                    "the predicted next frames in 0..1"),))

    def evaluate(self, folder: Path, split: str = "test", data: str | None = None, data_dir: Path | None = None,
                 download: bool = True) -> Evaluation:
        """MSE and SSIM of the forecasts beside copy-last-frame and all-black, on the run's test sequences
        (made again from its seed; ``split = "train"`` draws the first epoch's training sequences)."""
        if data is not None or data_dir is not None:
            raise LstmkitError("evaluate: a frames model is judged on the sequences its recipe generates; give no "
                               "--data or --data-dir")
        forecaster = FrameForecaster.load(folder)
        config = forecaster.config
        d = config.data
        train_images, test_images = digit_images(d.source, d.digit_size)
        sequences = (_sequences(test_images, d.test_samples, (config.train.seed, 2), d) if split == "test"
                     else _sequences(train_images, d.samples, (config.train.seed, 101), d))
        report = forecaster.evaluate(sequences.numpy())
        text = evaluation_text(len(sequences), d, report["model"], report["copy_last"], report["all_black"])
        return Evaluation({"data": "moving-digits", "split": split, **report}, text)

    def summary(self, metrics: dict[str, Any]) -> str:
        return summary(metrics)


def run(config: FramesConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out_dir``; returns the final metrics (also in metrics.json)."""
    from lstmkit.runs.train import run_task

    return run_task(config, out_dir, task=FramesTask()).metrics


def evaluation_text(sequences: int, d: FramesDataConfig, ours: dict[str, Any], baseline: dict[str, Any],
                    blank: dict[str, Any]) -> str:
    """evaluation.txt: overall MSE and SSIM of the model, copy-last-frame and all-black, then by predicted frame."""
    lines = [f"test sequences {sequences} ({d.input_frames} frames in, {d.output_frames} predicted, "
             f"{d.frame_size}x{d.frame_size})",
             "              MSE        SSIM",
             f"ConvLSTM      {ours['mse']:.5f}    {ours['ssim']:.4f}",
             f"copy-last     {baseline['mse']:.5f}    {baseline['ssim']:.4f}",
             f"all-black     {blank['mse']:.5f}    {blank['ssim']:.4f}",
             "",
             "by predicted frame",
             "frame   ConvLSTM MSE   copy-last MSE   ConvLSTM SSIM   copy-last SSIM"]
    for k, values in enumerate(zip(ours["mse_by_step"], baseline["mse_by_step"], ours["ssim_by_step"],
                                   baseline["ssim_by_step"]), start=1):
        lines.append(f"{k:>5}   {values[0]:12.5f}   {values[1]:13.5f}   {values[2]:13.4f}   {values[3]:14.4f}")
    return "\n".join(lines) + "\n"


def _save_model(folder: Path, model: ConvLSTMForecaster, config: FramesConfig) -> None:
    meta = {"task": "frames", "input_frames": config.data.input_frames, "output_frames": config.data.output_frames,
            "frame_size": config.data.frame_size, "head": config.model.head}
    write_model_folder(folder, model.state_dict(), FramesTask().dump_config(config), meta)


class FrameForecaster:
    """A trained frames model folder: ``predict(frames)`` forecasts the next frames."""

    def __init__(self, model: ConvLSTMForecaster, config: FramesConfig) -> None:
        self.model, self.config = model.eval(), config

    @classmethod
    def load(cls, folder: str | Path) -> FrameForecaster:
        """Load a frames model folder (or the run folder holding it), checked against its manifest."""
        contents = read_model_folder(folder)
        try:
            config = config_from_table(tomllib.loads(contents.config_text))
        except (ValueError, ConfigError, RecursionError) as exc:
            raise ModelFolderError(f"model folder {contents.folder}: cannot be read ({exc})") from None
        return cls(load_weights(lambda: build_model(config.model), contents), config)

    def evaluate(self, sequences: np.ndarray) -> dict[str, dict[str, Any]]:
        """Metrics (``frame_metrics`` by step) of the model, copy-last-frame and all-black on whole sequences
        (N, input_frames + output_frames, 1, H, W) in 0..1."""
        d = self.config.data
        x = np.asarray(sequences, dtype=np.float32)
        if x.ndim != 5 or x.shape[1] != d.input_frames + d.output_frames:
            raise DataError(f"frames evaluate: expected sequences of shape (N, {d.input_frames + d.output_frames}, "
                            f"1, {d.frame_size}, {d.frame_size}), got {tuple(x.shape)}")
        inputs, target = torch.from_numpy(x[:, :d.input_frames]), torch.from_numpy(x[:, d.input_frames:])
        predicted = torch.from_numpy(self.predict(inputs.numpy()))
        return {"model": frame_metrics(predicted, target, by_step=True),
                "copy_last": frame_metrics(copy_last_frame(inputs, d.output_frames), target, by_step=True),
                "all_black": frame_metrics(torch.zeros_like(target), target)}

    def predict(self, frames: np.ndarray, future: int | None = None) -> np.ndarray:
        """Predicted frames (N, future, 1, H, W) in 0..1 for input frames (N, L, 1, H, W) in 0..1; ``future``
        defaults to the recipe's ``output_frames``."""
        d = self.config.data
        x = np.asarray(frames, dtype=np.float32)
        if x.ndim != 5 or x.shape[2] != 1 or x.shape[3:] != (d.frame_size, d.frame_size) or x.shape[1] < 1:
            raise DataError(f"frames input: expected shape (N, L, 1, {d.frame_size}, {d.frame_size}), "
                            f"got {tuple(x.shape)}")
        if not np.isfinite(x).all():
            raise DataError("frames input: expected finite values in 0..1, got NaN or infinity")
        return forecast(self.model, torch.from_numpy(x), future or d.output_frames).numpy()


def summary(metrics: dict[str, Any]) -> str:
    first = f"frame 1: MSE {metrics['test_mse_by_step'][0]:.5f} / SSIM {metrics['test_ssim_by_step'][0]:.4f} " \
            f"(copy-last {metrics['baseline_mse_by_step'][0]:.5f} / {metrics['baseline_ssim_by_step'][0]:.4f})"
    return (f"test_mse {metrics['test_mse']:.5f} (copy-last-frame baseline {metrics['baseline_mse']:.5f})\n"
            f"test_ssim {metrics['test_ssim']:.4f} (copy-last-frame baseline {metrics['baseline_ssim']:.4f})\n"
            f"{first}\n"
            f"train_seconds {metrics['train_seconds']:.1f} ({metrics['epochs_run']} epochs)")
