"""The CLI answers a user error at once: argument checks come before PyTorch and the other heavy imports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent.parent / "src"
HEAVY = ("torch", "numpy", "sklearn", "matplotlib", "onnx", "onnxruntime", "fastapi", "uvicorn")


def _python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_importing_the_cli_and_building_its_parser_imports_no_heavy_library():
    probe = ("import sys; from lstmkit.cli import build_parser, main; build_parser(); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = _python("-c", probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start-up: {proc.stdout.strip()}"


@pytest.mark.parametrize("argv, message", [
    (["train", "nonexistent.toml"], "lstmkit: error: config file nonexistent.toml: not found"),
    (["train", "{digits}", "--set", "train.colour=red"], "lstmkit: error: config: unknown key 'train.colour'"),
    (["train", "{digits}", "--set", "train.lr=fast"], 'lstmkit: error: config [train] lr: expected a positive float'),
    (["train", "{digits}", "--nproc", "0"], "lstmkit: error: train --nproc: expected a positive number"),
    (["predict", "no/such/model", "x.npy", "--top", "0"], "lstmkit: error: predict --top: expected an integer >= 1, got 0"),
    (["predict", "no/such/model", "x.npy"], "lstmkit: error: model folder no/such/model: not found"),
    (["evaluate", "no/such/run"], "lstmkit: error: model folder no/such/run: not found"),
    (["train", "{dates}", "--set", "model.attention=cosine"],
     'lstmkit: error: config [model] attention: expected one of "additive", "dot", "general"'),
    (["train", "{frames}", "--set", "model.patch=3"],
     "lstmkit: error: config [model] patch: expected a divisor of [data] frame_size (64), got 3"),
])
def test_a_user_error_answers_with_one_line_and_status_2_before_any_heavy_import(argv, message, tmp_path):
    digits = str(SRC.parent / "configs" / "digits.toml")
    configs = SRC.parent / "configs"
    argv = [a.replace("{digits}", digits).replace("{dates}", str(configs / "dates.toml"))
            .replace("{frames}", str(configs / "moving_digits.toml")) for a in argv]
    probe = ("import sys\nfrom lstmkit.cli import main\nstatus = main(sys.argv[1:])\n"
             f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
             "assert not heavy, heavy\nsys.exit(status)\n")
    started = time.perf_counter()
    proc = _python("-c", probe, *argv, cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(message), proc.stderr
    assert seconds < 10  # about 0.1 s; the bound only catches a heavy import, not a busy machine


def test_python_dash_m_lstmkit_train_a_missing_config():
    """The acceptance command itself: ``python -m lstmkit train nonexistent.toml``."""
    proc = _python("-m", "lstmkit", "train", "nonexistent.toml")
    assert proc.returncode == 2
    assert proc.stderr == "lstmkit: error: config file nonexistent.toml: not found\n"
    assert proc.stdout == ""
