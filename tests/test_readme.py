"""The README and docs/ say what is true: their commands parse, their files exist, the quick start runs."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import build_parser

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
PATH = re.compile(r"(?<![\w/.-])((?:configs|examples|tools|bench|tests|src|docs|requirements)/[\w./-]*\w)")
COMMANDS = set(build_parser()._subparsers._group_actions[0].choices)


def _shell_blocks(text: str) -> list[str]:
    """The fenced blocks that are not Python, with backslash continuations joined."""
    return [body.replace("\\\n", " ") for lang, body in FENCE.findall(text) if lang != "python"]


def _lstmkit_commands(line: str) -> list[list[str]]:
    """The argument lists of every lstmkit command in one shell line."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return []
    commands, current = [], []
    for token in tokens + [";"]:
        if token in ("|", "&", "&&", ";", "||") or token.startswith(">"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token.rstrip("&;"))
    found = []
    for words in commands:
        words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # VAR=value before the command
        if words and words[0].endswith("lstmkit"):
            found.append(words[1:])
        elif "-m" in words and words.index("-m") + 1 < len(words) and words[words.index("-m") + 1] in ("lstmkit", "lstmkit.cli"):
            found.append(words[words.index("-m") + 2:])
    return found


def _documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in _shell_blocks(text):
            for line in block.splitlines():
                found += [(page.name, args) for args in _lstmkit_commands(line)]
        for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):  # inline code in the prose
            for args in _lstmkit_commands(span):
                if len(args) > 1 and args[0] in COMMANDS and "..." not in args:  # not a bare `lstmkit predict`
                    found.append((page.name, args))
    return found


def test_the_pages_show_lstmkit_commands():
    pages = {page for page, _ in _documented_commands()}
    assert {"README.md", "tasks.md", "deploy.md"} <= pages


@pytest.mark.parametrize("page, args", _documented_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_documented_command_line_parses(page, args):
    try:
        build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{page}: lstmkit {' '.join(args)} does not parse")


def test_every_file_and_link_the_pages_name_exists():
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for path in PATH.findall(text):
            placeholder = "*" in path or "{" in path or re.search(r"[A-Z]{3,}", Path(path).name)  # configs/NAME.toml
            if not placeholder and not (ROOT / path).exists():
                missing.append(f"{page.name}: {path}")
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not link.startswith("http") and not (page.parent / link).exists():
                missing.append(f"{page.name}: link {link}")
    assert missing == []


def _marked_block(text: str, mark: str) -> str:
    match = re.search(rf"<!-- quickstart:{mark} .*?-->\n```sh\n(.*?)```", text, re.S)
    assert match, f"README.md has no block marked quickstart:{mark}"
    return match.group(1)


def test_make_demo_runs_the_readme_quick_start_lines():
    demo = _marked_block((ROOT / "README.md").read_text(encoding="utf-8"), "demo").strip().splitlines()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    lines = [line.strip().replace("$(BIN)/", ".venv/bin/") for line in recipe.splitlines()]
    assert [line for line in lines if "lstmkit " in line] == demo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as_written(folder: Path, script: str) -> subprocess.CompletedProcess:
    """Run README lines with ``bash -e`` in ``folder`` (configs/ and examples/ linked in, the README's
    .venv/bin/lstmkit on this interpreter); fail with their output unless they all succeed."""
    for name in ("configs", "examples"):
        (folder / name).symlink_to(ROOT / name)
    shim = folder / ".venv" / "bin" / "lstmkit"
    shim.parent.mkdir(parents=True)
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m lstmkit \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_the_quick_start_runs_as_written(tmp_path):
    """The README's round, command for command, with a one-epoch model and a free port, in a fresh folder."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    demo, round_ = _marked_block(text, "demo"), _marked_block(text, "round")
    port = str(_free_port())
    tiny = (" --set train.epochs=1 --set model.hidden_size=16 --set train.progress=false --set train.num_threads=1"
            " --set train.report=false --set train.tensorboard=false")
    script = demo.replace("--out runs/demo", "--out runs/demo" + tiny) + round_.replace("8000", port)
    assert tiny in script and port in script
    # Then every command of docs/ that works on the quick start's runs/demo, as written.
    later = _docs_lines_on_the_demo_run()
    assert len(later) >= 6
    script += "\n".join(later) + "\n"
    result = _run_as_written(tmp_path, script)
    out = result.stdout
    assert re.search(r"^accuracy 0\.\d+", out, re.M)  # train and evaluate print the evaluation
    assert out.count("examples/digits_sample.csv[") == 5  # predict: the five samples
    assert "wrote runs/demo/model.onnx" in out and "verified in ONNX Runtime" in out
    assert '{"predictions":[{"label":' in out
    assert "lstmkit serve stopped" not in out
    assert (tmp_path / "runs" / "demo" / "report.html").is_file() and (tmp_path / "inspect" / "inspect.html").is_file()
    assert (tmp_path / "cm.png").is_file()


@pytest.mark.slow
def test_the_deploy_section_runs_as_written(tmp_path):
    """The README's Deploy section, command for command (a one-epoch forecaster, a free port): curl gets the
    forecasts on the original scale."""
    block = _marked_block((ROOT / "README.md").read_text(encoding="utf-8"), "deploy")
    tiny = (" --set train.epochs=1 --set model.hidden_size=8 --set train.progress=false --set train.num_threads=1"
            " --set train.report=false --set train.tensorboard=false")
    script = block.replace("--out runs/airline\n", "--out runs/airline" + tiny + "\n").replace("8000", str(_free_port()))
    assert tiny in script
    out = _run_as_written(tmp_path, script).stdout
    assert "history float32 (N, L, 1) -> forecast float64 (N, 12, 1)" in out
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["series"] == ["passengers"] and answer["horizon"] == 12
    assert len(answer["forecasts"][0]) == 12 and all(100 < step[0] < 2000 for step in answer["forecasts"][0])
    assert "lstmkit serve stopped" not in out



@pytest.mark.slow
def test_the_deploy_section_runs_a_variant_model_as_written(tmp_path):
    """The README's variant block, command for command (a layer-norm peephole LSTM for a few epochs, a free
    port): the export goes through the Scan loop and int8, and curl gets a prediction from the int8 file."""
    block = _marked_block((ROOT / "README.md").read_text(encoding="utf-8"), "deploy-variant")
    tiny = (" --set train.epochs=3 --set model.hidden_size=32 --set train.progress=false --set train.num_threads=1"
            " --set train.report=false --set train.tensorboard=false")
    script = block.replace("--set model.bidirectional=false\n", "--set model.bidirectional=false" + tiny + "\n")
    script = script.replace("--quantize int8", "--quantize int8 --max-accuracy-drop 100").replace("8000", str(_free_port()))
    assert tiny in script and "--max-accuracy-drop 100" in script
    out = _run_as_written(tmp_path, script).stdout
    assert "quantized to int8: int8 accuracy " in out and "digits (test split, 450 samples)" in out
    answer = json.loads(out.strip().splitlines()[-1])
    assert len(answer["predictions"]) == 1 and answer["predictions"][0]["label"] in [str(d) for d in range(10)]
    assert "lstmkit serve stopped" not in out
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "runs" / "ln.onnx")).graph.node}
    assert "Scan" in ops and "MatMulInteger" in ops


def test_the_readme_streams_a_recording_frame_by_frame_as_written(speech_run, tmp_path):
    """The README's speech-streaming block, as written but for the port, in a folder laid out as the README's
    (runs/fsdd/model, ../shared beside it), against a live server of the tiny FSDD model: an answer after every
    40 ms chunk that completes a frame, the last one equal to predict on the whole file."""
    from lstmkit.serve import create_app, load_backend
    from lstmkit.tasks import predict_trained

    sys.path.insert(0, str(ROOT / "tests" / "serve"))
    from serve_helpers import LiveServer

    shared = ROOT.resolve().parent / "shared"  # beside the repository, where the speech_run fixture read
    recordings = shared / "datasets" / "fsdd" / "recordings"
    match = re.search(r"<!-- stream:speech .*?-->\n```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)
    assert match, "README.md has no block marked stream:speech"
    repository = tmp_path / "repo"
    (repository / "runs" / "fsdd").mkdir(parents=True)
    (repository / "runs" / "fsdd" / "model").symlink_to(speech_run / "model")
    (tmp_path / "shared").symlink_to(shared)
    with LiveServer(create_app(load_backend(speech_run / "model"))) as live:
        block = match.group(1)
        assert "http://127.0.0.1:8000" in block
        script = block.replace("http://127.0.0.1:8000", live.url)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                                cwd=repository)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) > 20, result.stdout
    for line in lines:
        assert re.fullmatch(r"\d\.\d\d s heard: \d \((0|1)\.\d\d\)", line), line
    (whole,) = predict_trained(speech_run / "model", [str(recordings / "8_nicolas_2.wav")])
    assert lines[-1].split(" heard: ")[1].split(" ")[0] == whole["label"]

def _docs_lines_on_the_demo_run() -> list[str]:
    """The shell lines of docs/ that use the trained runs/demo and train nothing."""
    lines = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for block in _shell_blocks(page.read_text(encoding="utf-8")):
            for line in block.splitlines():
                commands = _lstmkit_commands(line)
                if "runs/demo" in line and commands and all(args[0] != "train" for args in commands):
                    lines.append(line)
    return lines


def test_the_serve_wait_loop_stops_when_serve_fails(tmp_path):
    """A server that cannot start (no such model) ends the README's loop at once, with its message."""
    round_ = _marked_block((ROOT / "README.md").read_text(encoding="utf-8"), "round")
    start = round_.index(".venv/bin/lstmkit serve")
    loop = round_[start:round_.index("done\n", start) + 5].replace("8000", str(_free_port()))
    shim = tmp_path / ".venv" / "bin" / "lstmkit"
    shim.parent.mkdir(parents=True)
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m lstmkit \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(["bash", "-c", loop], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert "lstmkit serve stopped" in result.stdout
    assert "model folder runs/demo/model.onnx" in result.stderr or "runs/demo/model.onnx" in result.stderr


@pytest.mark.slow
def test_the_forecasting_input_layout_shown_in_the_docs_works(tmp_path, capsys):
    """docs/tasks.md shows the layout of forecast --input with examples/airline_recent.csv; it forecasts."""
    from lstmkit.cli import main

    assert "examples/airline_recent.csv" in (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
    run = tmp_path / "airline"
    assert main(["train", str(ROOT / "configs" / "airline.toml"), "--out", str(run), "--set", "train.epochs=1",
                 "--set", "train.progress=false", "--set", "train.report=false", "--set", "train.num_threads=1"]) == 0
    capsys.readouterr()
    out = tmp_path / "recent.csv"
    assert main(["forecast", str(run / "model"), "--input", str(ROOT / "examples" / "airline_recent.csv"),
                 "--out", str(out)]) == 0
    assert f"wrote {out} (12 steps of 1 series)" in capsys.readouterr().out
    assert out.read_text().splitlines()[1].startswith("1961-01")  # the forecast starts after the file's last row


def test_the_readme_streams_a_digit_over_the_websocket_as_written(tmp_path):
    """The README's WebSocket block, as written but for the port, against a live server of a streaming model of
    8x8 digits (random weights: the labels vary, the shape of the output does not)."""
    import torch

    from lstmkit.artifacts.model_folder import save_model
    from lstmkit.config import Config, ModelConfig
    from lstmkit.data import Standardizer
    from lstmkit.models import InputSpec, build_model
    from lstmkit.serve import create_app, load_backend

    sys.path.insert(0, str(ROOT / "tests" / "serve"))
    from serve_helpers import LiveServer

    match = re.search(r"<!-- stream:example .*?-->\n```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"),
                      re.S)
    assert match, "README.md has no block marked stream:example"
    torch.manual_seed(0)
    spec = InputSpec(input_size=8, num_outputs=10, sequence_length=8)
    config = Config(model=ModelConfig(hidden_size=16))
    digits = np.random.default_rng(0).uniform(0, 16, size=(32, 8, 8)).astype(np.float32)
    folder = save_model(tmp_path / "model", build_model(config.model, spec).eval(), config, spec,
                        [str(d) for d in range(10)], Standardizer().fit(digits))
    with LiveServer(create_app(load_backend(folder))) as live:
        block = match.group(1)
        assert "ws://127.0.0.1:8000/v1/stream" in block
        script = block.replace("ws://127.0.0.1:8000", live.url.replace("http://", "ws://"))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 9 and lines[-1] == "rows streamed: 8", result.stdout
    for row, line in enumerate(lines[:8]):
        assert re.fullmatch(rf"after row {row}: \d \((0|1)\.\d\d\)", line), line
