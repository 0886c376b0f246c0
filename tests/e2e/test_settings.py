"""The config file of a running server: reloaded on SIGHUP and by ``pinpanel reload``,
saved over the API; untouched pins are never touched, a bad file changes nothing."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
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


def test_put_saves_into_the_file_keeping_comments_and_touches_only_what_changed(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    with server.client() as http:
        assert http.post("/api/v1/pins/relay/on").status_code == 200
        relay_rows = history_of(http, "relay")
        got = http.get("/api/v1/settings").json()
        assert [p["id"] for p in got["pins"]] == ["relay", "porch"]
        assert "pulse_ms" in {f["name"] for f in got["fields"]}
        pins = got["pins"]
        pins[1]["name"] = "Porch light"
        pins.append({"pin": 22, "id": "fan", "initial": "on"})
        answer = http.put("/api/v1/settings", json={"pins": pins, "interlocks": [[27, "fan"]]})
        assert answer.status_code == 200, answer.text
        done = answer.json()
        assert (done["added"], done["edited"], done["reclaimed"], done["removed"]) == \
            ([22], [27], [], [])
        assert done["path"] == str(server.config_path) and done["created"] is False
        text = server.config_path.read_text()
        assert "# my pins (this comment survives every save)" in text
        assert "# the relay board is active-low" in text
        assert 'name = "Porch light"' in text and "[[interlocks]]" in text
        assert server.config_path.with_name(server.config_path.name + ".bak").read_text() \
            == CONFIG
        assert http.get("/api/v1/pins/porch").json()["name"] == "Porch light"
        assert http.get("/api/v1/pins/fan").json()["state"] is True
        assert http.get("/api/v1/pins/relay").json()["state"] is True
        assert history_of(http, "relay") == relay_rows  # untouched: no re-claim, no write
    with contextlib.closing(sqlite3.connect(server.data_dir / "pinpanel.sqlite3")) as db:
        audit = db.execute("SELECT actor, kind, item, action, spec FROM automation_audit "
                           "ORDER BY seq").fetchall()
    who = f"tests-{server.port}"
    assert audit == [(who, "pin", "22", "added", str(server.config_path)),
                     (who, "pin", "27", "edited", str(server.config_path))]


def test_a_bad_edit_is_refused_with_every_path_and_the_file_is_unchanged(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    before = server.config_path.read_bytes()
    with server.client() as http:
        answer = http.put("/api/v1/settings", json={"pins": [
            {"pin": 17, "id": "relay", "pulse_ms": -5}, {"pin": 99, "id": "porch"}]})
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")
        paths = {e["path"] for e in answer.json()["errors"]}
        assert {"pins[0].pulse_ms", "pins[1].pin"} <= paths
        assert http.put("/api/v1/settings", json={"pins": [{"pin": None}]}).status_code == 422
        assert [p["id"] for p in http.get("/api/v1/pins").json()["pins"]] == ["relay", "porch"]
    assert server.config_path.read_bytes() == before
    assert not server.config_path.with_name(server.config_path.name + ".bak").exists()
    control = server.create_token("phone", "control")
    with server.client(control) as http:
        assert http.get("/api/v1/settings").status_code == 403
        assert http.put("/api/v1/settings", json={"pins": []}).status_code == 403


def test_a_server_without_a_config_file_writes_one_on_the_first_save(
        make_server: ServerFactory) -> None:
    server = make_server()
    written = server.data_dir / "pinpanel.toml"
    with server.client() as http:
        got = http.get("/api/v1/settings").json()
        assert got["path"] == str(written) and got["exists"] is False
        answer = http.put("/api/v1/settings", json={"pins": [*got["pins"], {"pin": 5,
                                                                             "id": "bell"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["created"] is True and answer.json()["added"] == [5]
    assert "bell" in written.read_text()
    assert server.stop() == 0
    again = make_server()
    with again.client() as http:
        assert pin_ids(http) == ["gpio18", "gpio23", "gpio24", "bell"]
    assert f"config file: {written}" in again.log()
