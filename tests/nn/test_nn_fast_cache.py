"""The compiled kernel in the cache is loaded only when its bytes match the record made when it was built
(issue 17 item 11: it was loaded by file name alone). The compiler is faked: no C++ is built here."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from lstmkit.nn import fast


@pytest.fixture
def fake_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(fast, "_compiler", lambda: "c++")
    calls: list[list[str]] = []

    def run(command, **kwargs):
        calls.append(command)
        Path(command[command.index("-o") + 1]).write_bytes(b"\x7fELF a compiled kernel #%d" % len(calls))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fast.subprocess, "run", run)
    return calls


def test_a_built_kernel_is_reused_with_its_record(fake_compiler: list[list[str]]) -> None:
    path = fast.build()
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["flags"][-1] == "-fopenmp" and record["source_sha256"] == fast._sha256_file(fast.SOURCE)
    assert fast.build() == path and len(fake_compiler) == 1


@pytest.mark.parametrize("tamper", [
    lambda so: so.write_bytes(b"\x7fELF something else"),
    lambda so: so.with_suffix(".json").unlink(),
    lambda so: so.chmod(0o666),
])
def test_a_replaced_or_unrecorded_kernel_is_rebuilt_not_loaded(fake_compiler, caplog, tamper) -> None:
    path = fast.build()
    tamper(path)
    with caplog.at_level(logging.WARNING, logger="lstmkit.nn.fast"):
        assert fast.build() == path
    assert len(fake_compiler) == 2  # built again
    assert path.read_bytes() == b"\x7fELF a compiled kernel #2"
    assert any("not loading the cached kernel" in r.getMessage() and "building it again" in r.getMessage()
               for r in caplog.records)
    assert oct(os.stat(path).st_mode & 0o022) == "0o0"


def test_a_kernel_built_from_another_source_is_rebuilt(fake_compiler) -> None:
    path = fast.build()
    record = json.loads(path.with_suffix(".json").read_text())
    record["source_sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(record))
    fast.build()
    assert len(fake_compiler) == 2
