"""Plots of sequence-to-sequence and frame models, written as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_attention", "plot_frames"]


def _save(fig: plt.Figure, title: str, path: str | Path, dpi: int) -> Path:
    """Title, lay out, write and close ``fig``; the path written."""
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_attention(examples: list[tuple[np.ndarray, list[str], list[str]]], path: str | Path,
                   title: str = "attention") -> Path:
    """One heatmap per example ``(weights (T, S), source tokens, output tokens)``: rows are output tokens,
    columns source tokens, darker is more attention."""
    count = max(len(examples), 1)
    fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 4.2), squeeze=False)
    for ax, (weights, source, output) in zip(axes[0], examples):
        weights = np.asarray(weights)
        ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(np.arange(len(source)), [repr(t)[1:-1] or " " for t in source], fontsize=7)
        ax.set_yticks(np.arange(len(output)), output, fontsize=7)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title("".join(source) if len(source) < 40 else title, fontsize=8)
    return _save(fig, title, path, dpi=100)


def plot_frames(inputs: np.ndarray, predicted: np.ndarray, target: np.ndarray, path: str | Path,
                title: str = "frames") -> Path:
    """A strip per sequence: input frames, then the predicted and the true future frames below them.

    ``inputs`` (N, L_in, H, W), ``predicted`` and ``target`` (N, K, H, W), values in 0..1.
    """
    inputs, predicted, target = (np.asarray(a) for a in (inputs, predicted, target))
    n, length, k = inputs.shape[0], inputs.shape[1], predicted.shape[1]
    columns = max(length, k)
    fig, axes = plt.subplots(3 * n, columns, figsize=(1.1 * columns, 1.2 * 3 * n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        for row, (frames, label) in enumerate(((inputs[i], "input"), (predicted[i], "predicted"), (target[i], "true"))):
            for j, frame in enumerate(frames):
                ax = axes[3 * i + row, j]
                ax.imshow(frame, cmap="gray", vmin=0.0, vmax=1.0)
                if j == 0:
                    ax.set_title(label, fontsize=7, loc="left")
    return _save(fig, title, path, dpi=80)
