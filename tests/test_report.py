"""The run report and the gate views: contents, a real browser, the adding problem's memory unit, errors."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lstmkit.cli import main
from lstmkit.data.synthetic import adding_problem
from lstmkit.errors import DataError, LstmkitError, ReportError
from lstmkit.report.gate_views import gate_views
from lstmkit.nn import LSTM
from lstmkit.report import highlight_text, parse_indices, read_forecast_csv, write_report

CONFIGS = Path(__file__).parent.parent / "configs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_run(digits_run, tmp_path_factory, one_thread_for_module):
    """The session's digits run (tests/conftest.py), copied, with its report of test samples 0 and 5."""
    run = tmp_path_factory.mktemp("digits") / "run"
    shutil.copytree(digits_run, run)
    write_report(run, samples=(0, 5))
    return run


# ---------------------------------------------------------------------------------------------------------
# The report of a classification run


@pytest.mark.slow
def test_report_holds_curves_evaluation_and_gate_views_inline(digits_run):
    page = (digits_run / "report.html").read_text()
    for heading in ("Training curves", "Final metrics", "Test evaluation", "Inside the LSTM", "Gate saturation",
                    "test sample 0: label", "test sample 5: label", "Units that indicate each class"):
        assert heading in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    # curves, confusion matrix, 2 samples x 2 directions, saturation per direction
    assert len(sources) == 1 + 1 + 4 + 2
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<script|<link|https?://|@import|url\(", page)  # self-contained, nothing fetched
    assert (digits_run / "report" / "confusion_matrix.png").stat().st_size > 5000
    assert len(list((digits_run / "report").glob("gates_*.png"))) == 4
    per_class = re.findall(r"<tr><td>(\d)</td>(?:<td class=num>[\d.]+</td>){4}</tr>", page)
    assert per_class == [str(i) for i in range(10)]


PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || ("failed to load " + (e.target && e.target.tagName))));
}, true);
var consoleError = console.error;
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, " ")); };
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); }).length;
  document.title = "PROBE " + JSON.stringify({images: images.length, broken: broken, errors: window.__errors});
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def probe(page: Path, tmp_path: Path) -> dict:
    """Open a copy of ``page`` with a script that records errors and broken images into the title."""
    copy = tmp_path / f"probe-{page.name}"
    copy.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()).stdout
    title = re.search(r"<title>PROBE (.*?)</title>", dom)
    assert title, f"the probe never ran; chromium printed {dom[:300]!r}"
    return json.loads(html.unescape(title.group(1)))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_loads_in_headless_chromium_without_errors(digits_run, tmp_path):
    # The probe itself can fail: a broken image and a script error are seen.
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>x</title></head><body>'
                   '<img src="data:image/png;base64,AAAA"><script>undefinedFunction();</script></body></html>')
    seen = probe(bad, tmp_path)
    assert seen["broken"] == 1 and any("undefinedFunction" in e for e in seen["errors"])

    seen = probe(digits_run / "report.html", tmp_path)
    assert seen == {"images": 8, "broken": 0, "errors": []}
    shot = tmp_path / "report.png"
    result = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--window-size=1200,2400",
                      f"--screenshot={shot}", (digits_run / "report.html").as_uri())
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert shot.stat().st_size > 50_000  # a page of figures, not a blank one


@pytest.mark.slow
def test_cli_report_and_inspect(digits_run, tmp_path, capsys):
    assert main(["report", str(digits_run), "--samples", "3", "--units", "1,2"]) == 0
    assert "test sample 3" in (digits_run / "report.html").read_text()
    sample = np.random.default_rng(0).uniform(0, 16, size=(1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "one.npy", sample)
    out = tmp_path / "inspect"
    assert main(["inspect", str(digits_run / "model"), str(tmp_path / "one.npy"), "--units", "3,7", "--out", str(out)]) == 0
    page = (out / "inspect.html").read_text()
    assert "one.npy[0]" in page and "units 3, 7" in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 2 + 2  # 2 directions, saturation of each
    assert main(["inspect", str(digits_run / "model"), str(tmp_path / "one.npy"), "--units", "3,999"]) == 2
    assert "units: expected unit indices in 0..31 (hidden_size 32), got 999" in capsys.readouterr().err


@pytest.mark.slow
def test_report_errors_name_the_option_and_what_was_given(digits_run, tmp_path):
    with pytest.raises(ReportError, match=r"report samples: expected indices into the digits test split, 0\.\.449, got 5000"):
        write_report(digits_run, samples=(0, 5000))
    with pytest.raises(ReportError, match=r"signal: expected shape \(2, 8\) .* or \(8,\) for all of them, got \(2, 7\)"):
        write_report(digits_run, samples=(0, 1), signal=np.zeros((2, 7)))
    with pytest.raises(ReportError, match=r"units: expected unit indices in 0\.\.31 \(hidden_size 32\), got 32"):
        write_report(digits_run, samples=(0,), units=[32])
    np.save(tmp_path / "wrong.npy", np.zeros((3, 9, 8)))
    with pytest.raises(DataError, match=r"wrong.npy"):
        main_error(["inspect", str(digits_run / "model"), str(tmp_path / "wrong.npy")])


def main_error(argv):
    """Run the command's library function the way the CLI does, so the exception itself can be checked."""
    from lstmkit.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


# ---------------------------------------------------------------------------------------------------------
# Other tasks' run folders, and errors that need no run


def test_report_draws_whatever_numeric_columns_and_the_forecast(tmp_path):
    run = tmp_path / "forecast-run"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "epoch,lr,train_loss,val_loss,val_mae,note,seconds\n1,0.01,1.0,1.2,0.9,warmup,3.0\n2,0.01,0.5,,0.7,,2.9\n"
    )
    (run / "forecast.csv").write_text("time,actual,forecast,lower,upper\n"
                                      "2024-01-01,1.0,1.1,0.9,1.3\n2024-01-02,2.0,1.8,1.5,2.1\n2024-01-03,,2.4,2.0,2.8\n")
    page = write_report(run).read_text()
    assert "Training curves" in page and "Forecast" in page and "Inside the LSTM" not in page
    assert (run / "report" / "curves.png").is_file() and (run / "report" / "forecast.png").is_file()
    assert re.search(r"<td class=num>2</td><td class=num>0\.1500</td>", page)  # 2 steps with both, MAE 0.15
    columns = read_forecast_csv(run / "forecast.csv")
    np.testing.assert_array_equal(columns["step"], [0, 1, 2])  # dates are labels: drawn in row order
    assert np.isnan(columns["actual"][2])


def test_report_of_an_empty_folder_says_so(tmp_path):
    assert "holds none of" in write_report(tmp_path).read_text()


def test_errors_without_a_run(tmp_path):
    with pytest.raises(ReportError, match=r"report: expected a run folder written by lstmkit train, got .*nowhere \(no such folder\)"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(ReportError, match=r"report --samples: expected comma-separated non-negative integers such as 0,1,2, got '0,x'"):
        parse_indices("0,x", "report --samples")
    with pytest.raises(ReportError, match=r"got '-1'"):
        parse_indices("-1", "inspect --units")
    (tmp_path / "forecast.csv").write_text("step,value\n1,2\n")
    with pytest.raises(ReportError, match=r"expected the columns step \(or time\), actual, forecast; got step, value"):
        read_forecast_csv(tmp_path / "forecast.csv")
    (tmp_path / "forecast.csv").write_text("step,actual,forecast\n1,2,high\n")
    with pytest.raises(ReportError, match=r"column forecast: expected numbers or empty cells, got text"):
        read_forecast_csv(tmp_path / "forecast.csv")
    with pytest.raises(ReportError, match=r"highlight_text: expected one activation per token, shape \(3,\), got \(2,\)"):
        highlight_text("abc", [0.1, 0.2])
    with pytest.raises(ReportError, match=r"expected finite activations"):
        highlight_text("ab", [0.1, float("nan")])
    np.save(tmp_path / "signal.npy", np.zeros(3))
    assert main(["report", str(tmp_path / "nowhere"), "--signal", str(tmp_path / "missing.npy")]) == 2
    assert issubclass(ReportError, LstmkitError)


def test_highlight_text_colours_each_character_by_the_unit():
    text = 'if (a < b) {\n  "x"'
    activation = np.linspace(-1, 1, len(text))
    markup = highlight_text(text, activation)
    spans = re.findall(r'<span style="background-color:rgb\((\d+),(\d+),(\d+)\)" title="(-?[\d.]+)">(.*?)</span>',
                       markup, flags=re.S)
    assert len(spans) == len(text)
    assert "".join(html.unescape(s[4]) for s in spans) == text.replace("\n", "\u21b5\n")  # escaped, newline kept
    first, middle, last = spans[0], spans[len(text) // 2], spans[-1]
    assert first[:3] == ("255", "0", "0") and float(first[3]) == -1.0  # most negative: full red
    assert last[:3] == ("0", "0", "255")  # most positive: full blue
    assert int(middle[1]) > 200  # near zero: near white
    assert markup.startswith('<div class="text">')


# ---------------------------------------------------------------------------------------------------------
# The adding problem: a unit that stores the first marked value


class AddingRegressor(nn.Module):
    def __init__(self, hidden_size: int = 8) -> None:
        super().__init__()
        self.lstm = LSTM(2, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(x)
        return self.head(h_n[-1]).squeeze(-1)  # (N,)


def train_adding(length: int = 20, steps: int = 600, seed: int = 0) -> AddingRegressor:
    """Adam on fresh batches of the adding problem; about 4 s on one thread, test MSE ~0.004."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AddingRegressor()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = map(torch.from_numpy, adding_problem(64, length, rng))
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_the_top_unit_for_the_marker_stores_the_first_value_until_the_second():
    model = train_adding()
    x, y = adding_problem(256, 20, np.random.default_rng(1))
    marker = x[..., 1]  # (N, L)
    with torch.no_grad():
        mse = float(((model(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean())
    assert mse < 0.02  # learned (predicting the mean gives about 0.17)

    views = gate_views(model, x, signal=marker)
    best = views.top_units(by="cell_change", k=1)[0]
    change = views.layer(best.layer).cell_change[..., best.unit]  # |c_t - c_{t-1}|, (N, L)
    r = np.corrcoef(change.ravel(), marker.ravel())[0, 1]
    assert best.r == pytest.approx(r) and r > 0.6
    at_markers, between = [], []
    for row, marks in zip(change, marker):
        first, second = np.flatnonzero(marks)
        at_markers += [row[first], row[second]]
        between += list(row[first + 1 : second])
    # The cell state moves at the two marked steps and holds in between.
    assert np.mean(between) < 0.3 * np.mean(at_markers)
    # A unit chosen at random does not pass both checks: the ranking matters.
    scores = {s.unit: s.r for s in views.top_units(by="cell_change", k=8)}
    assert min(abs(v) for v in scores.values()) < 0.6
