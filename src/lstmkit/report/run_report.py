"""A run's HTML report: curves, evaluation, forecasts, and what the LSTM's gates and cells do inside.

``write_report(run_dir)`` reads a run folder and writes ``RUN/report.html``, one self-contained page (every
figure inlined as a base64 PNG, no scripts, no external style sheet or font), and the figures as PNG files
in ``RUN/report/``. What the page holds depends on what the folder holds:

* ``metrics.csv``: a panel per metric over epochs, a line per split (``train_loss`` and ``val_loss`` share
  the panel ``loss``); every numeric column except ``epoch``, ``lr`` and ``seconds`` is drawn;
* ``metrics.json``: the final numbers;
* ``evaluation.json`` (classification): the confusion matrix and the per-class table;
* ``forecast.csv`` (forecasting), one row per time step with a header naming the columns:

  ======================= =================================================================
  ``step`` or ``time``    the x axis: numbers, or labels such as dates (then drawn in order)
  ``actual``              the observed value; empty where nothing was observed (the future)
  ``forecast``            the model's forecast; empty where it made none
  ``lower``, ``upper``    optional: an interval around the forecast
  ======================= =================================================================

* ``model/``: for a few test samples of the model's dataset (``samples``), per layer and direction,
  heatmaps of the input, forget and output gates and the cell state over time, line plots of chosen
  units, gate-saturation histograms (on up to 256 test samples), and the units that correlate most with
  a given per-step ``signal`` and with each class (:mod:`lstmkit.report.gate_views`).

``inspect_input(model_dir, input_path)`` writes the gate views of one input file the same way, and
``highlight_text`` renders characters coloured by one unit's activation for text models.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from lstmkit.errors import ReportError
from lstmkit.report.gate_views import SATURATION_HIGH, SATURATION_LOW, GateViews, LayerView, gate_views
from lstmkit.report.plots import plot_confusion_matrix, plot_curves, plot_forecast, plot_gate_heatmaps, plot_saturation

__all__ = ["write_report", "inspect_input", "highlight_text", "parse_indices", "read_metrics_csv", "read_forecast_csv"]

log = logging.getLogger(__name__)

NOT_PLOTTED = ("epoch", "lr", "seconds")
STATS_SAMPLES = 256
DEFAULT_SAMPLES = 3
"""Test samples whose gates the report shows when it is not told which (fewer when the test split is smaller)."""
RANKED_BY = {"cell_change": "|c_t - c_(t-1)|", "cell": "c_t", "input_gate": "i_t", "forget_gate": "f_t"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #ccc; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .note { color: #666; }
.text { font-family: monospace; white-space: pre-wrap; line-height: 1.6; }
"""


# ------------------------------------------------------------------------------------------------------------
# The page


class _Page:
    """An HTML page built section by section; figures are written to ``folder`` and inlined."""

    def __init__(self, title: str, folder: Path) -> None:
        self.title, self.folder, self.parts = title, folder, [f"<h1>{html.escape(title)}</h1>"]
        folder.mkdir(parents=True, exist_ok=True)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, note: bool = False) -> None:
        self.parts.append(f"<p{' class=note' if note else ''}>{html.escape(text)}</p>")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, path: Path, alt: str) -> None:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.parts.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        def cell(value: object) -> str:
            if isinstance(value, float):
                return f"<td class=num>{value:.4f}</td>"
            if isinstance(value, int):
                return f"<td class=num>{value}</td>"
            return f"<td>{html.escape(str(value))}</td>"

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def write(self, path: Path) -> Path:
        page = (
            f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(self.title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(self.parts) + "\n</body></html>\n"
        )
        path.write_text(page, encoding="utf-8")
        return path


# ------------------------------------------------------------------------------------------------------------
# Reading a run folder


def read_metrics_csv(path: Path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """``(epochs, {metric: {split: values}})`` from a ``metrics.csv``: every numeric column but ``epoch``,
    ``lr`` and ``seconds``, grouped by the name after a ``train_``/``val_``/``test_`` prefix; empty cells
    are NaN, columns with no number at all are left out."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = list(rows[0].keys()) if rows else []
    epochs = np.arange(1, len(rows) + 1, dtype=float)
    if "epoch" in columns:
        parsed = _numbers([row["epoch"] for row in rows])
        if parsed is not None and not np.isnan(parsed).any():
            epochs = parsed
    metrics: dict[str, dict[str, np.ndarray]] = {}
    for column in columns:
        if column is None or column in NOT_PLOTTED:
            continue
        values = _numbers([row[column] for row in rows])
        if values is None or np.isnan(values).all():
            continue
        split, _, metric = column.partition("_")
        if split not in ("train", "val", "test") or not metric:
            split, metric = column, column
        metrics.setdefault(metric, {})[split] = values
    return epochs, metrics


def read_forecast_csv(path: Path) -> dict[str, np.ndarray]:
    """The columns of a ``forecast.csv`` (see the module docstring) as arrays: ``step`` (numbers, or the
    row index when the column holds labels), ``actual``, ``forecast`` and, if present, ``lower``, ``upper``.

    Raises:
        ReportError: the header lacks ``actual`` or ``forecast``, or a value is not a number.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = set(rows[0].keys()) if rows else set()
    missing = [name for name in ("actual", "forecast") if name not in columns]
    if missing:
        raise ReportError(f"{path}: expected the columns step (or time), actual, forecast; "
                          f"got {', '.join(sorted(c for c in columns if c)) or 'no rows'}")
    result = {}
    for name in ("actual", "forecast", "lower", "upper"):
        if name in columns:
            values = _numbers([row[name] for row in rows])
            if values is None:
                raise ReportError(f"{path}: column {name}: expected numbers or empty cells, got text")
            result[name] = values
    x_name = "step" if "step" in columns else "time" if "time" in columns else None
    steps = _numbers([row[x_name] for row in rows]) if x_name else None
    result["step"] = steps if steps is not None and not np.isnan(steps).any() else np.arange(len(rows), dtype=float)
    return result


def _numbers(cells: list[str | None]) -> np.ndarray | None:
    """Floats of the cells (empty -> NaN), or None if a cell holds something else."""
    values = []
    for cell in cells:
        cell = (cell or "").strip()
        if not cell:
            values.append(math.nan)
            continue
        try:
            values.append(float(cell))
        except ValueError:
            return None
    return np.asarray(values, dtype=float)


def parse_indices(text: str, what: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``what`` names the option in the error.

    Raises:
        ReportError: an entry is not a non-negative integer.
    """
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = None
    if not values or any(v < 0 for v in values):
        raise ReportError(f"{what}: expected comma-separated non-negative integers such as 0,1,2, got {text!r}")
    return values


# ------------------------------------------------------------------------------------------------------------
# The report


def write_report(run_dir: str | Path, samples: Sequence[int] | None = None, signal: np.ndarray | None = None,
                 units: Sequence[int] | None = None) -> Path:
    """Write ``RUN/report.html`` and its figures (``RUN/report/*.png``) for the run folder ``run_dir``.

    Args:
        run_dir: a folder written by ``lstmkit train`` (or by another task, with the files it has).
        samples: indices into the test split of the model's dataset whose gates and cell states are shown;
            ``()`` leaves the gate views out; ``None`` (the default) shows the first ``DEFAULT_SAMPLES``, or
            all of them when the test split is smaller (a forecaster's may hold one window).
        signal: per-step values to rank units against, shape (len(samples), L) or (L,) for all of them, where
            L is the number of LSTM steps; ``None`` ranks nothing against a signal.
        units: the units shown as line plots in every layer; by default the three that correlate most
            with ``signal``, or without one the three with the widest cell-state range on each sample.

    Returns:
        the path of ``report.html``.

    Raises:
        ReportError: ``run_dir`` is not a folder, a sample index is out of range, ``signal`` has the wrong
            shape, or a unit does not exist.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"report: expected a run folder written by lstmkit train, got {run_dir} "
                          f"({'a file' if run_dir.exists() else 'no such folder'})")
    for stale in (run_dir / "report").glob("*.png"):  # figures of an earlier report (other samples, units)
        stale.unlink()
    page = _Page(f"lstmkit run {run_dir.name}", run_dir / "report")
    found = _curves_section(page, run_dir)
    found |= _evaluation_section(page, run_dir)
    found |= _forecast_section(page, run_dir)
    found |= _task_figures_section(page, run_dir)
    if ((run_dir / "model").is_dir() and (samples is None or list(samples))
            and _has_gate_views(run_dir / "model")):
        _run_gate_sections(page, run_dir / "model", None if samples is None else list(samples), signal, units)
    elif not found:
        page.text("This folder holds none of metrics.csv, evaluation.json, forecast.csv or model/.", note=True)
    path = page.write(run_dir / "report.html")
    log.debug("wrote %s", path)  # the caller says so (the CLI prints one line)
    return path


def _curves_section(page: _Page, run_dir: Path) -> bool:
    found = False
    metrics_csv = run_dir / "metrics.csv"
    if metrics_csv.is_file():
        found = True
        page.heading("Training curves")
        epochs, metrics = read_metrics_csv(metrics_csv)
        if metrics and len(epochs):
            page.figure(plot_curves(epochs, metrics, page.folder / "curves.png"), "training and validation curves")
        else:
            page.text("metrics.csv holds no numeric columns to draw yet.", note=True)
    metrics_json = run_dir / "metrics.json"
    if metrics_json.is_file():
        found = True
        final = json.loads(metrics_json.read_text())
        page.heading("Final metrics")
        page.table(["metric", "value"], [[k, v] for k, v in final.items() if isinstance(v, (int, float, str))])
    return found


def _evaluation_section(page: _Page, run_dir: Path) -> bool:
    path = run_dir / "evaluation.json"
    if not path.is_file():
        return False
    report = json.loads(path.read_text())
    if "confusion_matrix" not in report or "per_class" not in report:
        return False
    names = [row["label"] for row in report["per_class"]]
    page.heading("Test evaluation")
    page.table(["accuracy", "precision (macro)", "recall (macro)", "F1 (macro)"],
               [[report.get(k, "") for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro")]])
    figure = plot_confusion_matrix(report["confusion_matrix"], names, page.folder / "confusion_matrix.png",
                                   title="test confusion matrix (rows: true, columns: predicted)")
    page.figure(figure, "confusion matrix")
    page.table(["class", "precision", "recall", "F1", "support"],
               [[r["label"], r["precision"], r["recall"], r["f1"], r["support"]] for r in report["per_class"]])
    return True


def _has_gate_views(model_dir: Path) -> bool:
    """Whether the task that wrote ``model_dir`` shows gate and cell-state views (``Task.gate_views``)."""
    from lstmkit.tasks import trained_task

    return trained_task(model_dir)[0].gate_views


def _task_figures_section(page: _Page, run_dir: Path) -> bool:
    """The figures a task writes beside its evaluation (attention matrices, predicted frames), with the
    evaluation text of tasks whose evaluation is not a classification table."""
    from lstmkit.runs.folder import RunFolder

    run = RunFolder(run_dir)
    figures = [(path, alt) for path, alt in ((run.attention_png, "attention of test examples"),
                                            (run.frames_png, "input, predicted and true frames"))
               if path.is_file()]
    if not figures:
        return False
    page.heading("Test evaluation")
    if run.evaluation_txt.is_file():
        page.raw(f"<pre>{html.escape(run.evaluation_txt.read_text(encoding='utf-8'))}</pre>")
    for path, alt in figures:
        page.figure(path, alt)
    return True


def _forecast_section(page: _Page, run_dir: Path) -> bool:
    path = run_dir / "forecast.csv"
    if not path.is_file():
        return False
    columns = read_forecast_csv(path)
    page.heading("Forecast")
    figure = plot_forecast(columns["step"], columns["actual"], columns["forecast"], page.folder / "forecast.png",
                           columns.get("lower"), columns.get("upper"))
    page.figure(figure, "forecast against actual values")
    both = ~np.isnan(columns["actual"]) & ~np.isnan(columns["forecast"])
    if both.any():
        error = columns["forecast"][both] - columns["actual"][both]
        page.table(["steps with both", "MAE", "RMSE"],
                   [[int(both.sum()), float(np.abs(error).mean()), float(np.sqrt((error**2).mean()))]])
    # A forecasting run's evaluation: the LSTM beside the naive baselines and AutoETS / AutoARIMA
    evaluation, methods_png = run_dir / "evaluation.txt", run_dir / "forecast.png"
    if evaluation.is_file():
        page.raw(f"<pre>{html.escape(evaluation.read_text(encoding='utf-8'))}</pre>")
    if methods_png.is_file():
        page.figure(methods_png, "the LSTM forecast beside the baselines and statistical forecasters")
    return True


def _run_gate_sections(page: _Page, model_dir: Path, samples: list[int] | None, signal: np.ndarray | None,
                       units: Sequence[int] | None) -> None:
    from lstmkit.data import load_source
    from lstmkit.artifacts.model_folder import load_model

    from lstmkit.nn import LSTM

    model = load_model(model_dir)
    name = model.meta.get("data_name")
    if not any(isinstance(m, LSTM) for m in model.module.modules()):
        page.heading("Inside the LSTM")
        page.text(f"The model ({model.config.model.task}) holds no lstmkit LSTM, so there are no gates to show.",
                  note=True)
        return
    if not name:
        page.heading("Inside the LSTM")
        page.text("The model folder names no dataset, so there are no test samples to show.", note=True)
        return
    data = model.config.data
    source = load_source(name, data_dir=data.data_dir or None, download=data.download, config=data)
    test = source.test
    if samples is None:
        samples = list(range(min(DEFAULT_SAMPLES, len(test))))
    bad = [i for i in samples if not 0 <= i < len(test)]
    if bad:
        raise ReportError(f"report samples: expected indices into the {name} test split, 0..{len(test) - 1}, "
                          f"got {bad[0]}")
    per_sample = test.y.ndim == 1  # taggers and language models have a label per step, not per sample
    labels = ([model.label_names[int(test.y[i])] for i in samples] if model.meta.get("label_names") and per_sample
              else None)
    stats = np.arange(min(STATS_SAMPLES, len(test)))
    _gate_sections(page, model, test.x[samples], [f"test sample {i}" for i in samples], signal, units, labels,
                   stats_x=test.x[stats], stats_y=test.y[stats])


def _gate_sections(page: _Page, model, x_raw: np.ndarray, names: list[str], signal: np.ndarray | None,
                   units: Sequence[int] | None, labels: list[str] | None = None,
                   stats_x: np.ndarray | None = None, stats_y: np.ndarray | None = None) -> None:
    """Heatmaps, unit plots, saturation and rankings of ``model`` (a ``LoadedModel``) on raw inputs."""
    module = model.module
    probe = gate_views(module, model.prepare(x_raw[:1]))
    steps = probe.layers[0].valid.shape[1]
    if signal is not None:
        signal = np.asarray(signal, dtype=float)
        if signal.ndim == 1 and signal.shape[0] == steps:
            signal = np.broadcast_to(signal, (len(x_raw), steps))
        if signal.shape != (len(x_raw), steps):
            raise ReportError(
                f"signal: expected shape ({len(x_raw)}, {steps}) (one value per LSTM step for each of the "
                f"{len(x_raw)} samples) or ({steps},) for all of them, got {signal.shape}"
            )
    views = gate_views(module, model.prepare(x_raw), signal)
    hidden = min(v.hidden_size for v in views.layers)
    if units is not None:
        bad = [u for u in units if not 0 <= u < hidden]
        if bad:
            raise ReportError(f"units: expected unit indices in 0..{hidden - 1} (hidden_size {hidden}), got {bad[0]}")

    page.heading("Inside the LSTM")
    page.text(f"Recorded through lstmkit.nn.record_gates (the reference cell loop) on {len(x_raw)} input(s); "
              f"{len(views.layers)} layer/direction(s) of {hidden} units, {steps} steps. Gates i, f, o on a 0..1 "
              "scale (yellow: open), cell state c on a symmetric scale (red: positive, blue: negative).", note=True)
    probabilities = _probabilities(views, model)
    for n, name in enumerate(names):
        title = name
        if labels is not None:
            title += f": label {labels[n]}"
        if probabilities is not None:
            best = int(probabilities[n].argmax())
            title += f", predicted {model.label_names[best]} ({probabilities[n, best]:.2f})"
        page.heading(title, level=3)
        sample_signal = None if signal is None else signal[n]
        for view in views.layers:
            panels = {"i (input)": view.input_gate[n], "f (forget)": view.forget_gate[n],
                      "o (output)": view.output_gate[n], "c (cell)": view.cell[n]}
            lines = {"c": view.cell[n], "i": view.input_gate[n], "f": view.forget_gate[n], "o": view.output_gate[n]}
            chosen = list(units) if units is not None else _default_units(views, view, n)
            path = page.folder / f"gates_{n}_{view.name.replace(' ', '_')}.png"
            figure = plot_gate_heatmaps(panels, path, f"{name}, {view.name}: gates, cell state and units "
                                        f"{', '.join(map(str, chosen))}", sample_signal, lines, chosen)
            page.figure(figure, f"gates and cell state of {name}, {view.name}; units {', '.join(map(str, chosen))}")

    if signal is not None:
        page.heading("Units that follow the signal", level=3)
        rows = []
        for by, label in RANKED_BY.items():
            for rank, score in enumerate(views.top_units(by=by, k=5), start=1):
                rows.append([label, rank, score.layer, score.unit, score.r])
        page.table(["quantity", "rank", "layer", "unit", "r"], rows)

    stats = views if stats_x is None else gate_views(module, model.prepare(stats_x))
    page.heading("Gate saturation", level=3)
    page.text(f"For each unit, the fraction of steps its gate is below {SATURATION_LOW} (closed) or above "
              f"{SATURATION_HIGH} (open), over {stats.layers[0].valid.shape[0]} input(s).", note=True)
    for view in stats.layers:
        fractions = {g: view.saturation(g) for g in ("input_gate", "forget_gate", "output_gate")}
        figure = plot_saturation(fractions, page.folder / f"saturation_{view.name.replace(' ', '_')}.png",
                                 f"gate saturation, {view.name}", SATURATION_LOW, SATURATION_HIGH)
        page.figure(figure, f"gate saturation histograms, {view.name}")
    if stats_y is not None and np.ndim(stats_y) == 1 and model.meta.get("label_names"):  # a label per sample
        page.heading("Units that indicate each class", level=3)
        page.text("Correlation of each unit's final hidden state with being the class (one against the rest).",
                  note=True)
        ranked = stats.units_by_label(stats_y, model.label_names, k=3)
        page.table(["class", "layer", "unit", "r"],
                   [[label, s.layer, s.unit, s.r] for label, scores in ranked.items() for s in scores])


def _probabilities(views: GateViews, model) -> np.ndarray | None:
    out = views.outputs
    if out is None or out.ndim != 2 or out.shape[1] != len(model.meta.get("label_names") or []):
        return None
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _default_units(views: GateViews, view: LayerView, n: int, k: int = 3) -> list[int]:
    """The units of ``view`` that follow the signal most, or without one the widest cell-state ranges."""
    if views.signal is not None:
        ranked = [s.unit for s in views.top_units(by="cell_change", k=len(views.layers) * view.hidden_size)
                  if s.layer == view.name]
        return ranked[:k]
    cell = view.cell[n][view.valid[n]]  # (L, H)
    return [int(u) for u in np.argsort(-(cell.max(axis=0) - cell.min(axis=0)))[:k]]


# ------------------------------------------------------------------------------------------------------------
# One input file


def inspect_input(model_dir: str | Path, input_path: str | Path, units: Sequence[int] | None = None,
                  out_dir: str | Path | None = None, signal: np.ndarray | None = None) -> Path:
    """Write the gate views of the samples in one input file (``lstmkit predict``'s formats) to
    ``out_dir/inspect.html`` (default ``inspect-STEM`` beside the input) and ``out_dir/*.png``.

    Raises:
        ReportError: a unit does not exist, or ``signal`` has the wrong shape.
        DataError, ModelFolderError: the input file or the model folder cannot be read.
    """
    from lstmkit.data import read_sequences
    from lstmkit.artifacts.model_folder import load_model

    model = load_model(model_dir)
    length, features = model.input_shape
    image_shape = model.meta.get("image_shape")
    x, lengths = read_sequences(input_path, length, features,
                                image_shape=tuple(image_shape) if image_shape else None,
                                pixel_max=model.meta.get("pixel_max"))
    if lengths is not None:
        raise ReportError(f"inspect {input_path}: expected sequences of one length, got lengths "
                          f"{sorted(set(lengths.tolist()))}; give sequences of different lengths in separate files")
    input_path = Path(input_path)
    out = Path(out_dir) if out_dir is not None else input_path.parent / f"inspect-{input_path.stem}"
    page = _Page(f"lstmkit inspect {input_path.name}", out)
    names = [f"{input_path.name}[{i}]" for i in range(len(x))]
    _gate_sections(page, model, x, names, signal, units)
    path = page.write(out / "inspect.html")
    log.debug("wrote %s", path)  # the caller says so (the CLI prints one line)
    return path


# ------------------------------------------------------------------------------------------------------------
# Text


def highlight_text(tokens: str | Sequence[str], activation: Sequence[float] | np.ndarray,
                   scale: float | None = None) -> str:
    """Characters (or tokens) coloured by one unit's activation, as HTML spans, in the style of Karpathy,
    Johnson & Fei-Fei (2015): the background runs from red (negative) through white (0) to blue (positive),
    and each span's tooltip gives the value.

    Args:
        tokens: a string (one span per character) or a sequence of tokens.
        activation: one value per token, e.g. :math:`\\tanh(c_t)` or :math:`h_t` of one unit, shape (T,).
        scale: the value drawn at full colour; by default the largest absolute activation (at least 1e-12).

    Returns:
        a ``<div class="text">`` holding one ``<span>`` per token (newlines kept), ready to place in a page.

    Raises:
        ReportError: the activation is not one finite number per token.
    """
    tokens = list(tokens)
    values = np.asarray(activation, dtype=float)
    if values.shape != (len(tokens),):
        raise ReportError(f"highlight_text: expected one activation per token, shape ({len(tokens)},), "
                          f"got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ReportError("highlight_text: expected finite activations, got NaN or infinity")
    scale = float(scale) if scale is not None else max(float(np.abs(values).max(initial=0.0)), 1e-12)
    spans = []
    for token, value in zip(tokens, values):
        strength = min(abs(value) / scale, 1.0)
        fade = round(255 * (1 - strength))
        colour = f"rgb(255,{fade},{fade})" if value < 0 else f"rgb({fade},{fade},255)"
        text = html.escape(token).replace("\n", "\u21b5\n")
        spans.append(f'<span style="background-color:{colour}" title="{value:.3f}">{text}</span>')
    return '<div class="text">' + "".join(spans) + "</div>"
