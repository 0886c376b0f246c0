"""The benchmark harness still runs end to end: ``python -m bench --quick``.

Why a test: the harness is only useful if it works on the day someone needs a number. This
runs its correctness mode as a user would (a subprocess from the repository root) and checks
that every server started, every endpoint each server is expected to serve answered with the
right status and body shape, and the table came out. It asserts nothing about speed: timing on
a shared CI machine would make it flaky, and the full run reports the figures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_server_and_endpoint(tmp_path: Path) -> None:
    assert shutil.which("wrk") or Path("/usr/bin/wrk").exists(), "the harness needs wrk"
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"bench --quick failed:\n{proc.stderr[-3000:]}"
    results = json.loads(out.read_text(encoding="utf-8"))

    servers = results["servers"]
    assert set(servers) == {"pinpanel", "baseline", "ceiling"}
    for name, server in servers.items():
        assert server["started"], f"{name} did not start: {server['error']}"
        for key in server["expected"]:
            check = server["checks"].get(key)
            assert check is not None, f"{name} {key}: never checked"
            assert check["ok"], f"{name} {key}: {check['problem']}"
    assert results["quick_failures"] == []

    # Load, stream and memory figures were produced (values not judged).
    for name in ("pinpanel", "baseline"):
        assert servers[name]["load"], f"{name}: no load figures"
        assert servers[name]["toggles_rss"]["completed"] > 0
        assert servers[name]["process"]["idle_rss_mib"]
    assert servers["pinpanel"]["stream"], "pinpanel: no event-stream figures"

    assert "| figure | conns | pinpanel | baseline | ceiling |" in proc.stdout
    assert results["table"] in proc.stdout
    assert "Targets" in proc.stdout
