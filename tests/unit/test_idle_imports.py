"""What a server with every feature off leaves unimported until it is used (#21, idle RSS).

Each module here costs resident memory on a Pi that never uses it; these tests check only
which modules are loaded (never memory or time), through ``serve --get``, the same start-up
path ``serve`` takes, answering one request in-process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Loaded only when used: the pages' template engine at the first page rendered, astral at
#: the first sun schedule (so a page with no schedules does not load it either), the HomeKit
#: adapter and HAP-python only with [homekit] on (the HomeKit page's module never needs them).
DEFERRED = ("jinja2", "starlette.templating", "astral", "pinpanel.homekit", "pyhap")


def _serve_get(tmp_path: Path, path: str) -> tuple[int, list[str]]:
    config = tmp_path / "pinpanel.toml"
    config.write_text('[gpio]\nbackend = "simulated"\n\n[[pins]]\npin = 18\n\n'
                      '[mdns]\nenabled = false\n', encoding="utf-8")
    probe = ("import sys\nfrom pinpanel.cli import main\n"
             f"code = main(['serve', '--data-dir', {str(tmp_path / 'data')!r}, '--config', "
             f"{str(config)!r}, '--no-auth', '--get', {path!r}])\n"
             f"print(code, [m for m in {DEFERRED!r} if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=REPO)
    code, loaded = result.stdout.splitlines()[-1].split(" ", 1)
    return int(code), ast.literal_eval(loaded)


def test_an_api_request_with_every_feature_off_loads_no_template_engine(
        tmp_path: Path) -> None:
    assert _serve_get(tmp_path, "/api/list") == (0, [])


def test_the_homekit_page_with_homekit_off_loads_no_hap_python(tmp_path: Path) -> None:
    code, loaded = _serve_get(tmp_path, "/api/v1/homekit")
    assert code == 0
    assert "pyhap" not in loaded and "pinpanel.homekit" not in loaded


def test_the_first_page_loads_the_template_engine_and_renders(tmp_path: Path) -> None:
    code, loaded = _serve_get(tmp_path, "/")
    assert code == 0
    assert loaded == ["jinja2", "starlette.templating"]
