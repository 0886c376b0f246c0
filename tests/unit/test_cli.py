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


def test_check_config_lists_the_sensors_after_the_pins(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sensors.toml"
    config.write_text(
        "[[pins]]\npin = 17\nid = 'garage'\n"
        "[[sensors]]\nid = 'water'\nkind = 'counter'\npin = 6\npull = 'down'\n"
        "interval_s = 10\n"
        "[[sensors]]\nid = 'tank'\nname = 'Tank'\nkind = 'ds18b20'\n"
        "address = '28-0123456789ab'\n"
        "[[sensors]]\nid = 'air'\nkind = 'bme280'\naddress = '0x77'\n"
        "[[sensors]]\nid = 'soil'\nkind = 'mcp3008'\nchannel = 3\ndevice = 1\n"
        "[[sensors]]\nid = 'cpu'\nkind = 'cpu_temperature'\ninterval_s = 60\n")
    assert main(["check-config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{config}: OK, 1 pins, 5 sensors"
    start = next(i for i, line in enumerate(lines) if line.startswith("sensor "))
    assert lines[start].split() == ["sensor", "kind", "every", "source", "name"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:]]
    assert rows == [
        ["water", "counter", "10s", "BCM 6, pull down", "water"],
        ["tank", "ds18b20", "30s", "1-wire 28-0123456789ab", "Tank"],
        ["air", "bme280", "30s", "I2C bus 1, 0x77", "air"],
        ["soil", "mcp3008", "30s", "SPI CE1, channel 3", "soil"],
        ["cpu", "cpu_temperature", "60s", "this machine", "cpu"],
    ]
    assert lines.index(" BCM  id               mode    active_low initial/pull name") < start


def test_check_config_without_sensors_prints_no_sensor_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pins.toml"
    config.write_text("[[pins]]\npin = 17\n")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{config}: OK, 1 pins"
    assert "sensor" not in out
