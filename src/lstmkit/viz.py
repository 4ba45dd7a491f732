"""Plots written as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_confusion_matrix", "plot_forecast"]


def plot_confusion_matrix(matrix: np.ndarray | list, label_names: list[str], path: str | Path,
                          title: str = "Confusion matrix") -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) with counts in each cell."""
    cm = np.asarray(matrix)
    size = max(4.0, 0.6 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=45, ha="right")
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_forecast(path: str | Path, times: list[str], history: np.ndarray, future_times: list[str],
                  forecast: np.ndarray, actual: np.ndarray | None = None,
                  baselines: dict[str, np.ndarray] | None = None, names: list[str] | None = None,
                  title: str = "Forecast", last: int = 0) -> Path:
    """Draw each series' history, the forecast after it, the actual values there (when known) and baselines.

    Args:
        times: labels of the T history points; ``future_times`` of the N forecast points.
        history: (T, S) values; ``forecast``, ``actual`` and each baseline: (N, S).
        last: show only the last ``last`` history points (0: all).
    """
    history = np.asarray(history, dtype=float).reshape(len(times), -1)
    forecast = np.asarray(forecast, dtype=float).reshape(len(future_times), -1)
    count = history.shape[1]
    shown = min(count, 6)
    names = names or [f"series {i}" for i in range(count)]
    start = max(0, len(times) - last) if last else 0
    fig, axes = plt.subplots(shown, 1, figsize=(9, 3.2 * shown), squeeze=False)
    past = np.arange(start, len(times))
    future = np.arange(len(times), len(times) + len(future_times))
    labels = list(times) + list(future_times)
    for s, ax in enumerate(axes[:, 0]):
        ax.plot(past, history[start:, s], color="black", lw=1.2, label="history")
        if actual is not None:
            ax.plot(future, np.asarray(actual, dtype=float).reshape(len(future), -1)[:, s], color="black", lw=1.2,
                    ls="--", marker=".", label="actual")
        for (name, values), color in zip((baselines or {}).items(), ("tab:gray", "tab:green", "tab:purple")):
            ax.plot(future, np.asarray(values, dtype=float).reshape(len(future), -1)[:, s], color=color, lw=1,
                    ls=":", label=name.replace("_", " "))
        ax.plot(future, forecast[:, s], color="tab:red", lw=1.8, marker=".", label="LSTM forecast")
        ax.axvline(len(times) - 0.5, color="tab:blue", lw=0.8, alpha=0.5)
        ticks = np.linspace(start, len(labels) - 1, num=min(8, len(labels) - start)).round().astype(int)
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title}: {names[s]}" if count > 1 else title)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
