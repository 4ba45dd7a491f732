import numpy as np
import pytest

from lstmkit.evaluation.classification import classification_report, format_classification_report
from lstmkit.report.plots import plot_confusion_matrix


def test_report_matches_hand_counts():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    # class a: P=2/2 R=2/3; b: P=1/2 R=1/2; c: P=1/2 R=1/1
    assert report["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 / 1.5]
    assert report["f1_macro"] == pytest.approx(np.mean(f1))
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert [row["support"] for row in report["per_class"]] == [3, 2, 1]


def test_a_class_never_predicted_scores_zero_without_warnings():
    report = classification_report(np.array([0, 1]), np.array([0, 0]), ["x", "y"])
    assert report["per_class"][1]["precision"] == 0.0 and report["per_class"][1]["recall"] == 0.0


def test_text_and_png(tmp_path):
    report = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["cat", "dog"])
    text = format_classification_report(report)
    assert "accuracy 0.6667" in text and "recall (macro) 0.7500" in text
    assert "dog" in text and "confusion matrix" in text
    path = plot_confusion_matrix(report["confusion_matrix"], ["cat", "dog"], tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
