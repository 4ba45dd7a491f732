"""Plots written as PNG files (matplotlib, headless)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["ForecastPanel", "plot_confusion_matrix", "plot_curves", "plot_forecast", "plot_forecast_panels",
           "plot_gate_heatmaps", "plot_saturation", "plot_series_forecast"]


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


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_curves(epochs: np.ndarray, metrics: dict[str, dict[str, np.ndarray]], path: str | Path,
                title: str = "Training curves") -> Path:
    """One panel per metric (``{"loss": {"train": ..., "val": ...}, "mae": {"val": ...}}``), a line per split."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, (metric, splits) in zip(axes[0], metrics.items()):
        for split, values in splits.items():
            ax.plot(epochs, values, marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def plot_forecast(steps: np.ndarray, actual: np.ndarray, forecast: np.ndarray, path: str | Path,
                  lower: np.ndarray | None = None, upper: np.ndarray | None = None,
                  title: str = "Forecast vs actual") -> Path:
    """Actual and forecast values over time (NaN where absent), with the interval when given."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(steps, actual, color="black", label="actual")
    ax.plot(steps, forecast, color="tab:orange", label="forecast")
    if lower is not None and upper is not None:
        ax.fill_between(steps, lower, upper, color="tab:orange", alpha=0.2, label="interval")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_gate_heatmaps(panels: dict[str, np.ndarray], path: str | Path, title: str,
                       signal: np.ndarray | None = None, lines: dict[str, np.ndarray] | None = None,
                       units: list[int] | tuple[int, ...] = ()) -> Path:
    """One figure of a sample's gates over time: ``signal`` (L,) on top, then a heatmap of units (rows)
    over steps (columns) per entry of ``panels`` (each (L, H)), then a line plot per unit in ``units`` of
    each entry of ``lines`` (each (L, H)). Names starting with "c" are drawn on a symmetric red-blue scale
    (its bound in the label), the others (gates) on a fixed 0..1 scale (yellow: open)."""
    steps, num_units = next(iter(panels.values())).shape
    heights = ([0.8] if signal is not None else []) + [min(2.2, 0.5 + 0.015 * num_units)] * len(panels)
    heights += [1.1] * len(units)
    fig, axes = plt.subplots(len(heights), 1, figsize=(8, sum(heights) + 0.9), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    fig.subplots_adjust(left=0.14, right=0.92, top=1 - 0.45 / (sum(heights) + 0.9), bottom=0.5 / (sum(heights) + 0.9),
                        hspace=0.15)
    axes = list(axes[:, 0])
    time = np.arange(steps)
    if signal is not None:
        ax = axes.pop(0)
        ax.step(time, signal, where="mid", color="black")
        ax.set_ylabel("signal", fontsize=8)
    for name, values in panels.items():
        ax = axes.pop(0)
        if name.startswith("c"):
            bound = float(np.abs(values).max()) or 1.0
            image = ax.imshow(values.T, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
            name = f"{name}\n(\u00b1{bound:.2g})"
        else:
            image = ax.imshow(values.T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        # The colour bar sits in an inset just right of its panel, so every panel keeps the same time axis.
        bar = fig.colorbar(image, cax=ax.inset_axes([1.01, 0.0, 0.015, 1.0]))
        bar.ax.tick_params(labelsize=6)
        ax.set_ylabel(f"{name}\nunit", fontsize=8)
    for unit in units:
        ax = axes.pop(0)
        if signal is not None:
            ax.step(time, signal, where="mid", color="grey", alpha=0.5, label="signal")
        for name, values in (lines or {}).items():
            ax.plot(time, values[:, unit], label=name, linewidth=1.2)
        ax.set_ylabel(f"unit {unit}", fontsize=8)
        ax.grid(alpha=0.3)
        if unit == units[0]:
            ax.legend(fontsize=7, ncol=6, loc="upper left")
    fig.axes[-1].set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_saturation(fractions: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str,
                    low: float = 0.1, high: float = 0.9) -> Path:
    """For each gate, histograms over units of the fraction of steps below ``low`` and above ``high``."""
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.3 * len(fractions), 2.8), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.8, bottom=0.18, wspace=0.3)
    bins = np.linspace(0, 1, 21)
    for ax, (gate, (below, above)) in zip(axes[0], fractions.items()):
        ax.hist(below, bins=bins, alpha=0.6, label=f"< {low:g} (closed)")
        ax.hist(above, bins=bins, alpha=0.6, label=f"> {high:g} (open)")
        ax.set_xlabel("fraction of steps")
        ax.set_title(gate, fontsize=9)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("units")
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_series_forecast(path: str | Path, times: list[str], history: np.ndarray, future_times: list[str],
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
    names = names or [f"series {i}" for i in range(count)]

    def column(values: np.ndarray | None, s: int) -> np.ndarray | None:
        return None if values is None else np.asarray(values, dtype=float).reshape(len(future_times), -1)[:, s]

    panels = [ForecastPanel(f"{title}: {names[s]}" if count > 1 else title, list(times), history[:, s],
                            list(future_times), forecast[:, s], column(actual, s),
                            {name: column(values, s) for name, values in (baselines or {}).items()})
              for s in range(min(count, MAX_PANELS))]
    return plot_forecast_panels(path, panels, last)


MAX_PANELS = 6
"""Series drawn in one forecast figure, one panel each."""


@dataclass
class ForecastPanel:
    """One series in a forecast figure: its history (T,), and the forecast, actual values and baselines (N,)
    at ``future_times`` after it. Each panel has its own times (the series of a pooled run differ)."""

    title: str
    times: list[str]
    history: np.ndarray
    future_times: list[str]
    forecast: np.ndarray
    actual: np.ndarray | None = None
    baselines: dict[str, np.ndarray] = field(default_factory=dict)


def plot_forecast_panels(path: str | Path, panels: list[ForecastPanel], last: int = 0) -> Path:
    """Draw one panel per series, stacked: history, the forecast after it, the actual values there (when
    known) and the baselines. ``last``: show only the last ``last`` history points of each (0: all)."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    colors = ("tab:gray", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:olive")
    for panel, ax in zip(panels, axes[:, 0]):
        t = len(panel.times)
        start = max(0, t - last) if last else 0
        past, future = np.arange(start, t), np.arange(t, t + len(panel.future_times))
        labels = list(panel.times) + list(panel.future_times)
        ax.plot(past, np.asarray(panel.history, dtype=float)[start:], color="black", lw=1.2, label="history")
        if panel.actual is not None:
            ax.plot(future, panel.actual, color="black", lw=1.2, ls="--", marker=".", label="actual")
        for (name, values), color in zip(panel.baselines.items(), colors):
            ax.plot(future, values, color=color, lw=1, ls=":", label=name.replace("_", " "))
        ax.plot(future, panel.forecast, color="tab:red", lw=1.8, marker=".", label="LSTM forecast")
        ax.axvline(t - 0.5, color="tab:blue", lw=0.8, alpha=0.5)
        ticks = np.linspace(start, len(labels) - 1, num=min(8, len(labels) - start)).round().astype(int)
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=30, ha="right", fontsize=8)
        ax.set_title(panel.title)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
