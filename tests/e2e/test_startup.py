"""``serve``'s start-up order with real processes: the data-dir lock, then the port, then
the pins and the first-login link."""

from __future__ import annotations

import re
import socket
import sqlite3
from pathlib import Path

import httpx

from pinpanel.first_start import FIRST_LOGIN_FILE
from pinpanel.store import DB_NAME, MIGRATIONS
from tests.support import ServerFactory, ServerProcess, free_port, run_cli


def history_rows(data_dir: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT seq, actor FROM history ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_a_second_server_on_the_same_data_dir_stops_at_once_and_changes_nothing(
        make_server: ServerFactory) -> None:
    first = make_server()
    assert first.proc is not None
    with first.client() as http:
        assert http.post("/api/v1/pins/18/on").status_code == 200
    before = history_rows(first.data_dir)
    second = run_cli("serve", "--host", "127.0.0.1", "--port", str(free_port()),
                     "--data-dir", str(first.data_dir), timeout=30)
    assert second.returncode == 8, second.stderr
    assert second.stderr.splitlines() == [
        f"pinpanel: error: another pinpanel (pid {first.proc.pid}) is using {first.data_dir}"]
    assert history_rows(first.data_dir) == before, "the second server touched no pin"
    with first.client() as http:  # the first keeps working, its sequence unbroken
        switched = http.post("/api/v1/pins/18/off")
        assert switched.status_code == 200, switched.text
        assert switched.json()["seq"] == before[-1][0] + 1
        assert http.get("/api/v1/pins/18").json()["state"] is False


def test_serve_get_beside_a_running_server_stops_at_once_and_claims_no_pin(
        make_server: ServerFactory) -> None:
    """``--get`` opens the board like a server, so it takes the same lock."""
    server = make_server()
    assert server.proc is not None
    before = history_rows(server.data_dir)
    probe = run_cli("serve", "--data-dir", str(server.data_dir), "--get", "/api/v1/pins",
                    timeout=30)
    assert probe.returncode == 8, probe.stderr
    assert probe.stderr.splitlines()[-1] == (
        f"pinpanel: error: another pinpanel (pid {server.proc.pid}) is using {server.data_dir}")
    assert probe.stdout == ""
    assert history_rows(server.data_dir) == before
    with server.client() as http:
        assert http.post("/api/v1/pins/24/on").status_code == 200


def test_token_commands_work_while_the_server_runs(make_server: ServerFactory) -> None:
    server = make_server()
    made = run_cli("token", "create", "phone", "--scope", "control",
                   "--data-dir", str(server.data_dir))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    with server.client(token) as http:
        assert http.post("/api/v1/pins/23/toggle").status_code == 200
    listed = run_cli("token", "list", "--data-dir", str(server.data_dir))
    assert listed.returncode == 0 and "phone" in listed.stdout
    assert run_cli("token", "revoke", "phone", "--data-dir", str(server.data_dir)).returncode == 0
    with server.client(token) as http:
        assert http.get("/api/v1/pins").status_code == 401


def test_the_lock_dies_with_its_holder_even_on_kill_9(make_server: ServerFactory) -> None:
    first = make_server()
    first.kill()  # SIGKILL: no clean-up ran, the lock file is still there
    assert (first.data_dir / "pinpanel.lock").exists()
    again = ServerProcess(first.data_dir, token=first.token).start()
    try:
        with again.client() as http:
            assert http.get("/api/v1/pins").status_code == 200
    finally:
        again.kill()


def test_a_busy_port_is_one_line_with_its_own_exit_code_and_changes_nothing(
        tmp_path: Path) -> None:
    data = tmp_path / "d"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--host", "127.0.0.1", "--port", str(port),
                         "--data-dir", str(data), timeout=30)
    assert result.returncode == 7, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0]
    assert "token=" not in result.stdout + result.stderr, "no login link for a failed start"
    assert not (data / DB_NAME).exists(), "no database, no token, no pin touched"
    assert not (data / FIRST_LOGIN_FILE).exists()


def test_after_a_busy_port_the_next_start_shows_the_link(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = run_cli("serve", "--host", "127.0.0.1", "--port",
                       str(holder.getsockname()[1]), "--data-dir", str(data), timeout=30)
    assert busy.returncode == 7
    server = ServerProcess(data, token_scope=None).start()  # retried on another port
    try:
        text = (data / FIRST_LOGIN_FILE).read_text()
        link = re.search(rf"http://127\.0\.0\.1:{server.port}/login\?token=(pp_\S+)", text)
        assert link, text
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/api/v1/pins",
                            headers={"Authorization": f"Bearer {link.group(1)}"}
                            ).status_code == 200
    finally:
        assert server.stop() == 0


def test_a_first_login_link_never_used_is_shown_again_on_the_next_start(
        tmp_path: Path) -> None:
    data = tmp_path / "d"
    first = ServerProcess(data, token_scope=None).start()
    old = (data / FIRST_LOGIN_FILE).read_text()
    assert first.stop() == 0  # stopped before anyone opened the link
    (data / FIRST_LOGIN_FILE).unlink()
    again = ServerProcess(data, token_scope=None).start()
    try:
        new = (data / FIRST_LOGIN_FILE).read_text()
        assert "never used, so here is a new one" in new
        token = re.search(r"/login\?token=(pp_\S+)", new)
        old_token = re.search(r"/login\?token=(pp_\S+)", old)
        assert token and old_token and token.group(1) != old_token.group(1)
        with httpx.Client(base_url=again.url) as http:
            assert http.get("/api/v1/pins", headers={
                "Authorization": f"Bearer {token.group(1)}"}).status_code == 200
            assert http.get("/api/v1/pins", headers={
                "Authorization": f"Bearer {old_token.group(1)}"}).status_code == 401
            made = http.post("/api/v1/tokens", json={"name": "x", "scope": "read"},
                             headers={"Authorization": f"Bearer {token.group(1)}"})
            assert made.status_code == 201, "the new link is the admin's"
    finally:
        assert again.stop() == 0


def test_only_an_existing_database_reports_its_migration(tmp_path: Path) -> None:
    fresh = run_cli("serve", "--data-dir", str(tmp_path / "new"), "--no-auth",
                    "--get", "/healthz")
    assert fresh.returncode == 0, fresh.stderr
    assert "migrated" not in fresh.stderr, "a brand-new database is created, not migrated"
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    conn = sqlite3.connect(old / DB_NAME, isolation_level=None)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.close()
    migrated = run_cli("serve", "--data-dir", str(old), "--no-auth", "--get", "/healthz")
    assert migrated.returncode == 0, migrated.stderr
    assert "database migrated to schema 2" in migrated.stderr
    assert "schema 1" not in migrated.stderr


def test_a_read_token_is_told_it_needs_an_admin_token(make_server: ServerFactory) -> None:
    server = make_server()
    reader = server.create_token("dashboard", "read")
    with server.client(reader) as http:
        refused = http.get("/api/v1/tokens")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("this needs an admin token;")
