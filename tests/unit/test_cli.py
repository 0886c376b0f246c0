"""The command-line package: one list of commands, loaded on demand, imported by nobody."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pinpanel.cli import COMMANDS, main
from pinpanel.cli.exits import EXIT_CODES
from tests.support import REPO

SRC = REPO / "src" / "pinpanel"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_nothing_outside_the_cli_imports_it() -> None:
    for path in SRC.rglob("*.py"):
        if "cli" in path.relative_to(SRC).parts or path.name == "__main__.py":
            continue  # __main__ is `python -m pinpanel`: the same entry point as the script
        assert not any(name == "pinpanel.cli" or name.startswith("pinpanel.cli.")
                       for name in _imports(path)), path


def test_command_modules_never_import_the_dispatcher() -> None:
    """They may share ``pinpanel.cli.exits`` and ``.options``, never ``pinpanel.cli`` itself."""
    for path in (SRC / "cli").glob("*.py"):
        if path.name != "__init__.py":
            assert "pinpanel.cli" not in _imports(path), path


def test_the_client_module_imports_nothing_of_pinpanel() -> None:
    assert not [n for n in _imports(SRC / "client.py") if n.split(".")[0] == "pinpanel"]


def test_every_listed_command_has_its_implementation() -> None:
    import importlib

    for name, (_help, module) in COMMANDS.items():
        add_arguments, run = importlib.import_module(module).COMMANDS[name]
        assert callable(add_arguments) and callable(run), name


def test_serve_loads_neither_the_http_client_nor_the_fleet(tmp_path: Path) -> None:
    probe = ("import sys\nfrom pinpanel.cli import main\n"
             f"code = main(['serve', '--data-dir', {str(tmp_path)!r}, '--no-auth', "
             "'--get', '/healthz'])\n"
             "loaded = [m for m in ('pinpanel.client', 'pinpanel.fleet', 'pinpanel.cli.remote',"
             " 'pinpanel.cli.fleet', 'pinpanel.cli.token', 'urllib.request', 'aiomqtt')"
             " if m in sys.modules]\nprint(code, loaded)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=REPO)
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout


def test_help_lists_every_command_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    positions = [re.search(rf"\n    {re.escape(name)}\s", out).start()  # type: ignore[union-attr]
                 for name in COMMANDS]
    assert positions == sorted(positions)


def test_client_help_shows_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pins", "--help"])
    out = capsys.readouterr().out
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}" in out


def test_the_readme_documents_every_exit_code() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| exit code | meaning |"):]
    table = table[:table.index("\n\n")]
    documented = {int(line.split("|")[1]) for line in table.splitlines()[2:]}
    assert documented == set(EXIT_CODES) - {130}
