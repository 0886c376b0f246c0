"""The config file of a running server: reloaded on SIGHUP and by ``pinpanel reload``,
saved over the API; untouched pins are never touched, a bad file changes nothing."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support import ServerFactory, ServerProcess, run_cli

CONFIG = """\
# my pins (this comment survives every save)
[[pins]]
pin = 17
id = "relay"
active_low = true  # the relay board is active-low

[[pins]]
pin = 27
id = "porch"
"""


def wait_for(check: Callable[[], bool], what: str, server: ServerProcess,
             timeout: float = 30) -> None:
    """Poll until ``check`` holds (no timing asserted: the deadline only ends a hang)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen:\n{server.log()}")
        time.sleep(0.05)


def pin_ids(http: httpx.Client) -> list[str]:
    return [p["id"] for p in http.get("/api/v1/pins").json()["pins"]]


def history_of(http: httpx.Client, pin: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = http.get("/api/v1/history", params={"pin": pin}).json()[
        "items"]
    return rows


def test_sighup_applies_the_file_as_a_diff_and_a_bad_file_changes_nothing(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    with server.client() as http:
        assert http.post("/api/v1/pins/relay/on").status_code == 200
        relay_rows = history_of(http, "relay")
        server.config_path.write_text(CONFIG + '\n[[pins]]\npin = 22\nid = "fan"\n'
                                      'initial = "on"\n')
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "fan" in pin_ids(http), "the reload", server)
        fan = http.get("/api/v1/pins/fan").json()
        assert fan["state"] is True
        assert http.get("/api/v1/pins/relay").json()["state"] is True
        assert history_of(http, "relay") == relay_rows  # untouched: nothing recorded
        assert "1 pins added, 0 re-claimed, 0 edited in place, 0 removed, 2 left untouched" \
            in server.log()

        server.config_path.write_text(CONFIG.replace("pin = 27", "pin = 99"))
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in server.log(), "the refusal", server)
        assert "pins[1].pin" in server.log()
        assert pin_ids(http) == ["relay", "porch", "fan"]


def test_pinpanel_reload_signals_the_server_holding_the_data_dir(
        make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(CONFIG)
    server.config_path.write_text(CONFIG.replace('id = "porch"', 'id = "porch"\nname = "Porch"'))
    done = run_cli("reload", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    assert server.proc is not None and f"pid {server.proc.pid}" in done.stdout
    with server.client() as http:
        wait_for(lambda: http.get("/api/v1/pins/porch").json()["name"] == "Porch",
                 "the reload", server)
    assert server.stop() == 0
    refused = run_cli("reload", "--data-dir", str(server.data_dir))
    assert refused.returncode == 5 and "no server is running" in refused.stderr
