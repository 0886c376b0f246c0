"""Docs are tested against the code: settings, routes, examples and commands."""

from __future__ import annotations

from importlib.machinery import SourceFileLoader
from pathlib import Path

from pinpanel.config import load
from tests.support import REPO

README = (REPO / "README.md").read_text()


def _gen_docs() -> object:
    import importlib.util

    loader = SourceFileLoader("gen_docs", str(REPO / "scripts" / "gen-docs"))
    spec = importlib.util.spec_from_loader("gen_docs", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_settings_table_is_current() -> None:
    assert _gen_docs().render(README) == README, "run scripts/gen-docs"  # type: ignore[attr-defined]


def test_every_example_config_is_valid() -> None:
    examples = sorted((REPO / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        assert load(path).pins, path


def test_readme_example_is_the_example_file() -> None:
    example = (REPO / "examples" / "pinpanel.toml").read_text()
    body = example.split("\n\n", 1)[1]
    assert body in README


def test_every_api_path_is_in_the_readme() -> None:
    from pinpanel.web.app import spec

    for path in spec()["paths"]:
        last = "/" + path.rsplit("/", 1)[1]
        assert path in README or f"`{last}`" in README, path


def test_readme_gives_the_two_commands() -> None:
    assert ".venv/bin/pip install . && .venv/bin/pinpanel" in README
    assert "\n    scripts/test\n" in README
    assert (REPO / ".ci" / "run").read_text().count("scripts/test") == 1


def test_design_doc_exists() -> None:
    assert Path(REPO / "docs" / "DESIGN.md").exists()
