"""The #21 target benches still run end to end, each in its ``--quick`` mode.

Why: like ``test_bench_quick.py`` for ``python -m bench``, each of these is only useful if it
works on the day someone needs a figure. Each runs as a user would (a subprocess from the
repository root, a real ``pinpanel serve`` process) and the test checks what came out is
correct and complete: never how fast, which on a shared machine would make it flaky.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_quick(module: str, tmp_path: Path, *extra: str) -> tuple[str, Any]:
    """``python -m <module> --quick --json FILE``: (stdout, the parsed JSON)."""
    out = tmp_path / f"{module}.json"
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--json", str(out), *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{module} --quick failed:\n{proc.stderr[-3000:]}"
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def test_fanout_quick_delivers_every_change_to_every_stream_in_order(tmp_path: Path) -> None:
    stdout, results = run_quick("bench.fanout", tmp_path)
    assert len(results) == 1
    res = results[0]
    assert res["subscribers"] == 5 and res["toggles"] == 3
    assert res["deliveries"] == 15
    assert res["missing"] == 0 and res["seq_mismatches"] == 0 and res["errors"] == []
    assert "auth on" in res["mode"]
    assert "| subscribers | deliveries | p50 ms | p99 ms |" in stdout
    assert "| 5 | 15 of 15 |" in stdout


def test_footprint_quick_measures_every_configuration_and_judges_the_targets(
        tmp_path: Path) -> None:
    stdout, results = run_quick("bench.footprint", tmp_path)
    names = ["defaults", "all off", "sensors (10 at 1 Hz)", "schedules + rules (50 + 50)",
             "mqtt bridge", "hub", "mdns / lan"]
    # and "homekit (with mdns)" after them, once the tree has the adapter and HAP-python
    assert list(results["start"])[:7] == names and list(results["idle"])[:7] == names
    for name in names:
        start, idle = results["start"][name], results["idle"][name]
        assert len(start["first_200_s"]) == 1 and start["first_200_s"][0] > 0
        assert start["rss_mb"][0] > 0 and idle["rss_mb"] > 0
        assert idle["cpu_share"] >= 0 and idle["window_s"] >= 2
    assert [t["name"].split(",")[0].split(" <=")[0] for t in results["targets"]] == [
        "idle RSS", "first 200", "10 sensors at 1 Hz",
        "50 schedules + 50 rules idle ~0 % of a core"]
    for name in names:
        assert f"| {name} |" in stdout


def test_routes_quick_checks_and_loads_each_newer_route(tmp_path: Path) -> None:
    stdout, results = run_quick("bench.routes", tmp_path)
    keys = ["pins", "level", "readings", "hub", "schedules"]
    assert results["checks"] == dict.fromkeys(keys)  # every route answered right
    assert results["meta"]["fleet_online"] == 10 and results["meta"]["history_points"] == 2880
    for key in keys:
        (run,) = results["load"][key]
        assert run["requests"] > 0 and run["failed"] == 0
    # each level request is a commit (a few may meet the level already set by another)
    assert results["load"]["level"][0]["commits"] > 0
    assert "| route | req/s | p50 ms | p99 ms | req per server CPU-s | failed |" in stdout


def test_server_choice_quick_serves_pinpanel_under_uvicorn_and_granian(tmp_path: Path) -> None:
    stdout, figures = run_quick("bench.server_choice", tmp_path)
    routes = {"GET /api/list", "GET /api/v1/pins", "POST /api/toggle/18"}
    assert set(figures) == {"uvicorn", "granian"}
    for server in figures.values():
        assert set(server) == routes
        assert all(len(v) == 1 and v[0] > 0 for v in server.values())
    assert stdout.count("\n| `") == 3
