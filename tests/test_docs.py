"""The reference pages in docs/ are generated from the code, and say what the code says."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_pages_are_what_the_code_generates():
    gen = _gen_docs()
    for name, render in gen.PAGES.items():
        committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert committed == getattr(gen, render)(), f"docs/{name} is stale: run python tools/gen_docs.py"


def test_every_config_key_has_a_type_a_default_and_a_meaning():
    gen = _gen_docs()
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for _, _, cls in gen.recipe_kinds():
        for table in dataclasses.fields(cls):
            rows = gen.config_rows(table.type if isinstance(table.type, type) else type(table.default_factory()))
            for key, kind, default, meaning in rows:
                assert kind and default and meaning, f"[{table.name}] {key}: no meaning in its docstring"
                assert f"| `{key}` | " in page


def test_every_command_and_option_is_in_the_cli_reference():
    from lstmkit.cli import build_parser

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    for name, sub in commands.choices.items():
        assert f"## lstmkit {name}\n" in page
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in page or f", {flag}" in page, (name, flag)


def test_a_stale_page_is_reported(tmp_path):
    gen = _gen_docs()
    (tmp_path / "configuration.md").write_text(gen.render_configuration(), encoding="utf-8")
    (tmp_path / "cli.md").write_text(gen.render_cli().replace("--beam", "--beams"), encoding="utf-8")
    assert gen.stale_pages(tmp_path) == ["cli.md"]
