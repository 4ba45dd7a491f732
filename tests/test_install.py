"""The set-up's promises: ranges in pyproject.toml, locks with hashes inside them, torch left to its installer."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
TORCH_DEPS = {"torch"}


def _requirements(extra: str | None = None) -> list[Requirement]:
    lines = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def _pins(name: str) -> dict[str, str]:
    """``{package: version}`` of a lock file, checking that every pin carries its hashes."""
    text = (ROOT / "requirements" / f"{name}.txt").read_text(encoding="utf-8")
    pins = {}
    for block in re.split(r"\n(?=[a-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            assert "--hash=sha256:" in block, f"{name}.txt: {match.group(1)} has no hash"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize("extra", [None, *PROJECT["optional-dependencies"]])
def test_every_dependency_has_a_lower_and_an_upper_bound(extra):
    for requirement in _requirements(extra):
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators and "<" in operators, f"{requirement}: expected a range such as >=1.2,<2"


@pytest.mark.parametrize("lock, extras", [("runtime", [None]), ("dev", [None, "dev"])])
def test_the_locks_pin_every_dependency_inside_its_range(lock, extras):
    pins = _pins(lock)
    assert not TORCH_DEPS & set(pins), "torch is installed by tools/install_torch.py, never from a lock"
    for extra in extras:
        for requirement in _requirements(extra):
            name = canonicalize_name(requirement.name)
            if name in TORCH_DEPS or (requirement.marker and not requirement.marker.evaluate({"python_version": "3.11"})):
                continue
            assert name in pins, f"requirements/{lock}.txt: {name} is not pinned"
            assert requirement.specifier.contains(pins[name], prereleases=True), \
                f"requirements/{lock}.txt: {name}=={pins[name]} is outside {requirement.specifier}"


def test_the_two_locks_agree_on_what_they_share():
    runtime, dev = _pins("runtime"), _pins("dev")
    assert set(runtime) <= set(dev)
    assert {name: dev[name] for name in runtime} == runtime


def test_the_set_up_installs_the_locks_with_hashes_after_torch():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet --require-hashes --no-deps -r requirements/$(1).txt" in makefile
    assert re.search(r"^demo: setup\n", makefile, re.M) and re.search(r"^test: setup-dev\n", makefile, re.M)
    runtime_target = re.search(r"^\$\(VENV\)/\.runtime-installed:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert runtime_target.index("tools/install_torch.py") < runtime_target.index("$(call install,runtime")
