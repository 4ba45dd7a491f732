"""Fuzzing ``lstmkit train`` in-process: a bad config or bad data is one error line, status 2, no run folder.

Kept light (a few dozen examples each): an example that happens to be valid trains a model.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject
from hypothesis import strategies as st

from fuzz_harness import COUNTS, fuzz_settings, mutated, write
from lstmkit.cli import main
from lstmkit.config import load_config
from lstmkit.data.idx import IDX_FILES
from lstmkit.errors import ConfigError

ROOT = Path(__file__).parent.parent.parent
DIGITS = (ROOT / "configs" / "digits.toml").read_bytes()
CLI_EXAMPLES = 40
CHEAP = ["--set=train.epochs=1", "--set=train.progress=false", "--set=model.hidden_size=4",
         "--set=model.bidirectional=false"]
CLI_SETTINGS = fuzz_settings(max_examples=CLI_EXAMPLES,
                             suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                    HealthCheck.filter_too_much, HealthCheck.too_slow])


def run_train(name: str | None, argv: list[str], out: Path, capsys: pytest.CaptureFixture) -> int:
    """Run ``lstmkit train``; a failure must be one ``lstmkit: error:`` line and leave no run folder.

    ``name`` counts the call as a fuzz example of that entry point.
    """
    if name is not None:
        COUNTS[name] += 1
    shutil.rmtree(out, ignore_errors=True)  # what a valid earlier example trained
    capsys.readouterr()
    status = main(["train", *argv, "--out", str(out)])
    err = capsys.readouterr().err
    if status == 0:
        assert (out / "model" / "meta.json").is_file()
        return status
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmkit: error: ") and len(lines[0]) > 16, err
    assert not out.exists(), f"a failed run left {sorted(p.name for p in out.rglob('*'))} in {out}"
    return status


OVERRIDES = st.one_of(
    st.sampled_from(["train.lr=fast", "train.epochs=0", "train.epochs=1.5", "model.hidden_size=-1",
                     "train.seed=99999999999", "model.conv_channels=[4,\"x\"]", "data.val_fraction=2",
                     "train.nope=1", "train.lr.x=1", "=1", "train", "model.conv=conv3d", "data.name=nosuch",
                     "train.lr=" + "[" * 2000, "train.batch_size=" + "9" * 30, "train.optimizer=\"a\\nb\""]),
    st.text(max_size=12),
)


@CLI_SETTINGS
@given(content=st.one_of(mutated(DIGITS, max_ops=2), st.binary(max_size=64)),
       overrides=st.lists(OVERRIDES, max_size=2))
def test_train_with_a_bad_config(workdir: Path, capsys: pytest.CaptureFixture, content: bytes,
                                 overrides: list[str]) -> None:
    path = write(workdir / "bad.toml", content)
    try:
        load_config(path, overrides)
    except ConfigError:
        pass
    else:
        reject()  # a valid config would train a full digits model: not what this test is for
    run_train("cli_train_config", [str(path), *(f"--set={o}" for o in overrides)], workdir / "run", capsys)


def _idx(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 8, np.dtype(np.int32): 12}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


GOOD = {
    "train-images-idx3-ubyte": _idx(np.arange(6 * 28 * 28, dtype=np.uint8).reshape(6, 28, 28)),
    "train-labels-idx1-ubyte": _idx(np.array([0, 1, 2, 9, 1, 0], dtype=np.uint8)),
    "t10k-images-idx3-ubyte": _idx(np.arange(4 * 28 * 28, dtype=np.uint8).reshape(4, 28, 28)[::-1].copy()),
    "t10k-labels-idx1-ubyte": _idx(np.array([3, 9, 0, 1], dtype=np.uint8)),
}
assert set(GOOD) == set(IDX_FILES)
BAD_ARRAYS = st.sampled_from([  # well-formed files that hold the wrong thing
    np.zeros((6, 27, 28), np.uint8), np.zeros((6, 28), np.uint8), np.zeros((0, 28, 28), np.uint8),
    np.array([0, 1, 2, 200, 1, 0], np.uint8), np.array([0, 1], np.uint8), np.zeros((6,), np.int32),
]).map(_idx)


@CLI_SETTINGS
@given(stem=st.sampled_from(sorted(GOOD)), gz=st.booleans(), data=st.data())
def test_train_with_bad_mnist_files(workdir: Path, capsys: pytest.CaptureFixture, stem: str, gz: bool,
                                    data: st.DataObject) -> None:
    content = data.draw(st.one_of(mutated(GOOD[stem], max_ops=2), BAD_ARRAYS, st.binary(max_size=64)))
    folder = workdir / "mnist"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, good in GOOD.items():
        payload = content if name == stem else good
        write(folder / (f"{name}.gz" if gz else name), gzip.compress(payload, mtime=0) if gz else payload)
    run_train("cli_train_data", [str(ROOT / "configs" / "mnist.toml"), "--data-dir", str(folder), *CHEAP],
              workdir / "run", capsys)


@pytest.mark.parametrize(("overrides", "error"), [
    (["--set=model.proj_size=8"],  # ConfigError from build_model
     r"config \[model\] proj_size: expected less than hidden_size \(4\), got 8"),
    (["--set=model.conv=conv1d", "--set=model.pool=1000"],  # the network cannot run on 8 steps
     r"config \[model\]: the network cannot run on inputs of shape \(N, 8, 8\)"),
])
def test_train_with_a_config_that_fails_against_the_data(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         overrides: list[str], error: str) -> None:
    """A config valid on its own that fails against the data: status 2 and one line naming the key, no run."""
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", str(ROOT / "configs" / "digits.toml"), *CHEAP, *overrides, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"lstmkit: error: " + error, lines[0]), lines
    assert not out.exists()
