"""Classification metrics: accuracy, macro precision/recall/F1, a per-class table and a confusion matrix.

``precision_c = TP_c / (TP_c + FP_c)``, ``recall_c = TP_c / (TP_c + FN_c)``,
``F1_c = 2 precision_c recall_c / (precision_c + recall_c)``; the macro scores average over classes, so a
rare class counts as much as a common one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

__all__ = ["classification_report", "format_classification_report"]


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix, as plain data."""
    labels = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "per_class": [
            {"label": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)
        ],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_classification_report(report: dict[str, Any]) -> str:
    """A plain-text rendering: headline scores, the per-class table and the confusion matrix."""
    names = [row["label"] for row in report["per_class"]]
    # A confusion-matrix row is named "INDEX NAME" unless the name is its index; no name is cut short.
    row_names = [name if name == str(i) else f"{i} {name}" for i, name in enumerate(names)]
    width = max(12, *(len(n) for n in names + row_names))
    lines = [
        f"accuracy {report['accuracy']:.4f}   precision (macro) {report['precision_macro']:.4f}   "
        f"recall (macro) {report['recall_macro']:.4f}   F1 (macro) {report['f1_macro']:.4f}",
        "",
        f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}",
    ]
    for row in report["per_class"]:
        lines.append(f"{row['label']:<{width}} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                     f"{row['f1']:>9.4f} {row['support']:>8d}")
    cm = np.asarray(report["confusion_matrix"])
    cell = max(5, len(str(cm.max())) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              " " * width + "".join(f"{i:>{cell}d}" for i in range(len(names)))]
    for row_name, row in zip(row_names, cm):
        lines.append(f"{row_name:<{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)
