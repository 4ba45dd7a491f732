"""The slips a new user hit in their first hour (issue 18), each checked where the user met it."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main

ROOT = Path(__file__).parent.parent.parent
CONFIGS = ROOT / "configs"
QUICK = ["--set", "train.epochs=1", "--set", "train.progress=false", "--set", "train.tensorboard=false",
         "--set", "train.num_threads=1"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A one-epoch digits run of a tiny LSTM, without its report."""
    out = tmp_path_factory.mktemp("digits") / "run"
    assert main(["train", str(CONFIGS / "digits.toml"), "--out", str(out), *QUICK, "--set", "model.hidden_size=8",
                 "--set", "train.report=false"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["airline", "shampoo", "lynx"])
def test_2_a_forecasting_run_writes_its_report_with_its_one_test_window(recipe, tmp_path, caplog, capsys):
    caplog.set_level(logging.WARNING)
    out = tmp_path / recipe
    assert main(["train", str(CONFIGS / f"{recipe}.toml"), "--out", str(out), *QUICK]) == 0
    assert not [r for r in caplog.records if "report could not be written" in r.getMessage()]
    page = (out / "report.html").read_text()
    assert "test sample 0" in page and "test sample 1" not in page  # one test window: one sample shown
    capsys.readouterr()
    assert main(["report", str(out)]) == 0  # the command's default fits the run too
    assert capsys.readouterr().out == f"wrote {out / 'report.html'}\n"


def test_3_predict_top_must_be_at_least_one(digits_run, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8), dtype=np.float32))
    assert main(["predict", str(digits_run / "model"), str(tmp_path / "x.npy"), "--top", "0"]) == 2
    assert capsys.readouterr().err == "lstmkit: error: predict --top: expected an integer >= 1, got 0\n"
    assert main(["predict", str(digits_run / "model"), str(tmp_path / "x.npy"), "--top", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r".*x\.npy\[0\]\t\d\t[\d.]+\t\(\d [\d.]+\)", line), line


def test_4_report_and_inspect_say_wrote_once(digits_run, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    assert main(["report", str(digits_run), "--samples", "0"]) == 0
    np.save(tmp_path / "one.npy", np.zeros((1, 8, 8), dtype=np.float32))
    assert main(["inspect", str(digits_run / "model"), str(tmp_path / "one.npy"), "--out", str(tmp_path / "i")]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("wrote ") == 2  # one line per command, on stdout
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "wrote" in r.getMessage()]


def test_5_fashion_mnist_says_where_it_reads_once_per_run(tmp_path, monkeypatch, caplog):
    from lstmkit.data import idx, load_source

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        idx.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        idx.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", (tmp_path,))
    monkeypatch.setattr(idx, "_ANNOUNCED", set(), raising=False)
    caplog.set_level(logging.INFO)
    for _ in range(2):  # a run reads it to train, and again to draw its report
        assert len(load_source("fashion-mnist", download=False).test) == 4
    reading = [r.getMessage() for r in caplog.records if "reading" in r.getMessage()]
    assert reading == [f"fashion-mnist: reading {tmp_path}"]


def test_6_confusion_matrix_rows_keep_whole_class_names():
    from lstmkit.evaluation.classification import classification_report, format_classification_report

    names = ["T-shirt/top", "Trouser", "Pullover"]
    text = format_classification_report(classification_report(np.array([0, 1, 2, 0]), np.array([0, 1, 2, 1]), names))
    rows = text.split("confusion matrix")[1].splitlines()[2:]
    assert [row.split("  ")[0].strip() for row in rows] == ["0 T-shirt/top", "1 Trouser", "2 Pullover"]


def test_7_one_bad_row_is_one_such_row(tmp_path):
    from lstmkit.config import DataConfig
    from lstmkit.data import load_source
    from lstmkit.errors import DataError

    pytest.importorskip("pandas")
    path = tmp_path / "sales.csv"
    path.write_text("time,sales\n" + "".join(f"{t},{'x' if t == 3 else t}\n" for t in range(40)))
    with pytest.raises(DataError, match=r"non-numeric value 'x' \(1 such row\); fill or drop"):
        load_source("series", config=DataConfig(name="series", path=str(path), window=4, horizon=2))


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare words


def test_8_help_texts_say_what_each_option_is(capsys):
    assert "--split {test,train} the split of the dataset to evaluate on (default test)" in _help(["evaluate"], capsys)
    report = _help(["report"], capsys)
    assert "--samples INDICES test-split indices" in report
    export = _help(["export"], capsys)
    assert "--samples FILE.npy a .npy file of raw inputs" in export and "not the test-split indices" in export
    assert re.search(r"config TOML config, .*except with --resume RUN", _help(["train"], capsys))
    assert "repeat it for more texts: --text A --text B" in _help(["predict"], capsys)
    assert "off by default" in _help(["serve"], capsys)  # --access-log


def test_9_gate_heatmaps_have_a_colour_bar_each(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from lstmkit.report.plots import plot_gate_heatmaps

    bars = []
    original = Figure.colorbar
    monkeypatch.setattr(Figure, "colorbar", lambda self, mappable, **kw: bars.append(mappable) or original(self, mappable, **kw))
    rng = np.random.default_rng(0)
    panels = {"i": rng.uniform(0, 1, (12, 5)), "f": rng.uniform(0, 1, (12, 5)), "c": rng.normal(size=(12, 5))}
    plot_gate_heatmaps(panels, tmp_path / "gates.png", "sample 0", signal=np.arange(12.0),
                       lines={"c": panels["c"]}, units=[1])
    assert len(bars) == 3
    assert [b.get_clim() for b in bars[:2]] == [(0, 1), (0, 1)] and bars[2].get_clim()[0] < 0
