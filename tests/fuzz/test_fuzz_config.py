"""Fuzzing the config loader (TOML files) and the ``--set`` override parser."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import given, reject
from hypothesis import strategies as st

from fuzz_harness import check_entry_point, fuzz_settings, mutated, write
from lstmkit.config import Config, DataConfig, ModelConfig, TrainConfig, dump_config, load_config
from lstmkit.errors import ConfigError

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
KEY_PATHS = sorted(f"{section}.{key}" for section, cls in SECTIONS.items() for key in typing.get_type_hints(cls))
# Every choice of every Literal field, so that a generated table is often valid.
CHOICES = sorted({choice for cls in SECTIONS.values() for tp in typing.get_type_hints(cls).values()
                  if typing.get_origin(tp) is typing.Literal for choice in typing.get_args(tp)})

# Integers at and past TOML's 64-bit range, and floats that are not finite. Hypothesis' nested
# strategies cost ~10 ms an example, so values are flat: a scalar or a short list of scalars.
EDGE_NUMBERS = st.sampled_from([0, -1, 2**31, 2**32, 2**63 - 1, 2**63, -(2**63) - 1, 10**400,
                                float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324])
SCALARS = st.one_of(st.booleans(), st.integers(-3, 300), EDGE_NUMBERS, st.floats(-2, 2),
                    st.sampled_from(CHOICES), st.text(max_size=8))
VALUES = SCALARS | st.lists(SCALARS, max_size=3)
KEYS = st.sampled_from(KEY_PATHS + ["data", "model", "train", "train.lr.x", "optim.lr", "model.hidden", "0"])


def _table(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Nested dicts from dotted keys; a key that would nest into a scalar is dropped."""
    table: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = key.split(".")
        node = table
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = value
    return table


@st.composite
def toml_documents(draw: st.DrawFn) -> bytes:
    table = _table(draw(st.lists(st.tuples(KEYS, VALUES), max_size=6)))
    try:
        return tomli_w.dumps(table).encode("utf-8")
    except (TypeError, ValueError):
        reject()  # something tomli_w cannot write


def nested(depth: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """Deeply nested arrays or inline tables, such as ``[[[[1]]]]``."""
    return st.tuples(st.sampled_from([("[", "]"), ("{a=", "}"), ("[{a=", "}]")]), depth).map(
        lambda t: t[0][0] * t[1] + "1" + t[0][1] * t[1])


DEPTH = st.integers(1, 20) | st.integers(20, 3000)
CONFIG_FILES = st.one_of(
    toml_documents(),
    mutated(toml_documents()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.text(max_size=50).map(lambda t: t.encode("utf-16")),
    st.sampled_from([b"", b"\n", b"   ", b"\xef\xbb\xbf", b"\x00", b"[train]\n[train]\n"]),
    st.tuples(KEYS, nested(DEPTH)).map(lambda t: f"{t[0]} = {t[1]}\n".encode()),
)


def _round_trips(config: Config, path: Path) -> None:
    """A config that loads can be written as the run's config.toml and loads back equal."""
    assert isinstance(config, Config)
    dump_config(config, path)
    assert load_config(path) == config


@fuzz_settings()
@given(content=CONFIG_FILES)
def test_config_file(workdir: Path, content: bytes) -> None:
    path = write(workdir / "run.toml", content)
    check_entry_point("config_file", lambda: load_config(path), error=ConfigError,
                      mentions=[f"config file {path}", "config"],
                      validate=lambda c: _round_trips(c, workdir / "written.toml"))


def _render(value: Any) -> str:
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


OVERRIDE_VALUES = st.one_of(
    VALUES.map(_render),
    st.text(max_size=12),
    nested(DEPTH),
    st.sampled_from(["1" + "0" * 400, "1e400", "-inf", "nan", '"a\\nb"', "[", "'", "{}", "{a=1}", ""]),
)
OVERRIDE_KEYS = st.lists(st.sampled_from(["data", "model", "train", "lr", "epochs", "conv_channels", "x", ""])
                         | st.text(max_size=4), max_size=4).map(".".join)
OVERRIDES = st.one_of(
    st.tuples(KEYS, OVERRIDE_VALUES).map("=".join),
    st.tuples(OVERRIDE_KEYS, st.sampled_from(["=", " = ", "==", ""]), OVERRIDE_VALUES).map("".join),
    st.text(max_size=20),
)


@fuzz_settings()
@given(overrides=st.lists(OVERRIDES, min_size=1, max_size=3), from_file=st.booleans())
def test_config_overrides(workdir: Path, overrides: list[str], from_file: bool) -> None:
    path = write(workdir / "base.toml", "[train]\nlr = 0.5\n[model]\nconv_channels = [4]\n") if from_file else None
    check_entry_point("config_overrides", lambda: load_config(path, overrides), error=ConfigError,
                      mentions=["override ", "config"],
                      validate=lambda c: _round_trips(c, workdir / "written.toml"))
