"""Tokens: the CLI and the API, immediate revocation, secrets never at rest nor in logs,
and the audit log naming who did what."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from pinpanel.first_start import FIRST_LOGIN_FILE
from tests.security.conftest import Spawn, browser_session, make_tokens, revoke
from tests.support import JSON, ServerProcess, run_cli

TOKEN = re.compile(r"pp_[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def server(spawn: Spawn) -> ServerProcess:
    return spawn()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_cli_create_list_revoke_and_a_running_server_follows_at_once(
        server: ServerProcess) -> None:
    data = ("--data-dir", str(server.data_dir))
    made = run_cli("token", "create", "kitchen-tablet", "--scope", "read", "--link", *data)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert TOKEN.fullmatch(token), "stdout is the token alone, for TOKEN=$(...)"
    assert f"/login?token={token}" in made.stderr and "\u2588" in made.stderr  # link + QR
    with httpx.Client(base_url=server.url) as http:
        # made by another process while the server runs: usable on the very next request
        assert http.get("/api/v1/pins", headers=bearer(token)).status_code == 200
        assert http.post("/api/v1/pins/18/on", headers=bearer(token)).status_code == 403
        listed = run_cli("token", "list", *data)
        assert re.search(r"kitchen-tablet\s+read\s", listed.stdout)
        assert "pp_" not in listed.stdout
        revoke(server, "kitchen-tablet")
        refused = http.get("/api/v1/pins", headers=bearer(token))
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    gone = run_cli("token", "revoke", "kitchen-tablet", *data)
    assert gone.returncode == 1 and "no token named" in gone.stderr


def test_the_token_api_is_for_admins_only(server: ServerProcess) -> None:
    with server.client() as admin:
        made = admin.post("/api/v1/tokens", json={"name": "ci", "scope": "control"})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        assert made.json() == {"name": "ci", "scope": "control", "token": token}
        listed = admin.get("/api/v1/tokens").json()["tokens"]
        assert {"name": "ci", "scope": "control"}.items() <= \
            next(t for t in listed if t["name"] == "ci").items()
        assert "pp_" not in admin.get("/api/v1/tokens").text
        assert admin.post("/api/v1/tokens", json={"name": "ci"}).status_code == 409
        assert admin.post("/api/v1/tokens", json={"name": "x", "scope": "root"}
                          ).status_code == 422
        assert admin.post("/api/v1/tokens", json={"name": "../x"}).status_code == 422
        with httpx.Client(base_url=server.url, headers=bearer(token)) as ci:
            assert ci.post("/api/v1/pins/23/toggle").status_code == 200
            assert ci.get("/api/v1/tokens").status_code == 403
            assert ci.post("/api/v1/tokens", json={"name": "mine"}).status_code == 403
            assert ci.delete("/api/v1/tokens/ci").status_code == 403
        assert admin.delete("/api/v1/tokens/ci").status_code == 204
        assert admin.delete("/api/v1/tokens/ci").status_code == 404
        with httpx.Client(base_url=server.url, headers=bearer(token)) as ci:
            assert ci.get("/api/v1/pins").status_code == 401


def test_revoking_a_token_ends_its_browser_sessions(server: ServerProcess) -> None:
    with server.client() as admin:
        token = admin.post("/api/v1/tokens", json={"name": "phone"}).json()["token"]
    session = browser_session(server, token)
    with httpx.Client(base_url=server.url, headers=session.header) as browser:
        assert browser.get("/api/v1/pins").status_code == 200
        revoke(server, "phone")
        assert browser.get("/api/v1/pins").status_code == 401


def test_the_audit_log_names_the_token_and_the_sessions_token(server: ServerProcess) -> None:
    with server.client() as admin:
        token = admin.post("/api/v1/tokens", json={"name": "garage-app"}).json()["token"]
        owner = admin.post("/api/v1/tokens", json={"name": "alice"}).json()["token"]
    with httpx.Client(base_url=server.url, headers=bearer(token)) as app:
        assert app.post("/api/toggle/24", headers=JSON).status_code == 200
    session = browser_session(server, owner)
    with httpx.Client(base_url=server.url, headers=session.header) as browser:
        assert browser.post("/toggle?pin=24", data={"csrf_token": session.csrf}
                            ).status_code == 303
    with server.client() as admin:
        rows = admin.get("/api/v1/history", params={"pin": 24, "limit": 2}).json()["items"]
    assert [(r["actor"], r["cause"]) for r in rows] == [("alice", "form"), ("garage-app", "api")]


@pytest.fixture(scope="module")
def fresh(spawn: Spawn) -> ServerProcess:
    """A first start: no token exists, so the server makes an admin token and announces it."""
    return spawn(token_scope=None)


def first_token(server: ServerProcess) -> str:
    text = (server.data_dir / FIRST_LOGIN_FILE).read_text()
    link = re.search(r"http://[^\s]+/login\?token=(pp_[A-Za-z0-9_-]{43})", text)
    assert link, text
    return link.group(1)


def test_first_start_writes_the_login_link_to_a_private_file(fresh: ServerProcess) -> None:
    path: Path = fresh.data_dir / FIRST_LOGIN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "\u2588" in path.read_text(), "a QR code for a phone"
    token = first_token(fresh)
    assert token not in fresh.log()
    assert str(path) in fresh.log(), "the log says where the link is"
    # The link works: the login page shows a confirm button; posting it logs in.
    with httpx.Client(base_url=fresh.url) as browser:
        page = browser.get(f"/login?token={token}")
        assert page.status_code == 200 and "Sign in" in page.text
        assert "set-cookie" not in page.headers, "a GET must not log anyone in"
        assert browser.post("/login", data={"token": token}).status_code == 303
        tokens = browser.get("/api/v1/tokens").json()["tokens"]
        assert [(t["name"], t["scope"]) for t in tokens] == [("admin", "admin")]


def test_no_secret_is_stored_in_clear_or_logged(fresh: ServerProcess) -> None:
    secrets_seen = {first_token(fresh)}
    with httpx.Client(base_url=fresh.url, headers=bearer(first_token(fresh))) as admin:
        for name in ("one", "two"):
            made = admin.post("/api/v1/tokens", json={"name": name, "scope": "admin"})
            secrets_seen.add(made.json()["token"])
        made = run_cli("token", "create", "three", "--data-dir", str(fresh.data_dir))
        secrets_seen.add(made.stdout.strip())
        for token in list(secrets_seen):
            assert admin.get("/api/v1/pins", headers=bearer(token)).status_code == 200
            session = browser_session(fresh, token)
            secrets_seen |= {session.cookie, session.csrf}
        admin.post("/api/v1/pins/18/toggle")
        bad = "pp_" + "y" * 43
        assert admin.get("/api/v1/pins", headers=bearer(bad)).status_code == 401
        assert admin.post("/login", data={"token": bad}).status_code == 401
        secrets_seen.add(bad)
    assert fresh.stop() == 0  # everything flushed; the WAL is checkpointed into the file
    log = fresh.log()
    assert "refused an unknown or revoked token from 127.0.0.1" in log
    assert "failed login from 127.0.0.1" in log
    stored = b"".join(p.read_bytes() for p in fresh.data_dir.iterdir()
                      if p.name != FIRST_LOGIN_FILE)
    for secret in secrets_seen:
        assert secret.encode() not in stored, "a secret is stored in clear"
        assert secret not in log, "a secret reached the log"
    # A later start makes no new token and says how to make one.
    (fresh.data_dir / FIRST_LOGIN_FILE).unlink()
    again = ServerProcess(fresh.data_dir, token_scope=None).start()
    try:
        assert not (fresh.data_dir / FIRST_LOGIN_FILE).exists()
        assert "pinpanel token create NAME --scope admin" in again.log()
    finally:
        again.kill()


def curl(*args: str) -> tuple[int, str]:
    binary = shutil.which("curl")
    if binary is None:
        pytest.fail("curl is needed (Debian: apt install curl)")
    done = subprocess.run([binary, "-s", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_tutorials_curl_contract_with_a_control_token(server: ServerProcess) -> None:
    """The tutorial's curl commands, verbatim plus the token header."""
    token = make_tokens(server, tutorial="control")["tutorial"]
    auth = ("-H", f"Authorization: Bearer {token}")
    ct = ("-H", "Content-Type: application/json")
    status, body = curl(*ct, *auth, f"{server.url}/api/list")
    listed = json.loads(body)
    assert status == 200 and set(listed) == {"18", "23", "24"}
    assert all(isinstance(state, bool) for state in listed.values())
    status, body = curl(*ct, *auth, "-X", "POST", f"{server.url}/api/toggle/18")
    assert (status, json.loads(body)) == (200, {"Success": True})
    status, body = curl(*ct, *auth, f"{server.url}/api/list")
    assert json.loads(body) == {**listed, "18": not listed["18"]}
    status, body = curl(*auth, f"{server.url}/api/list")
    assert (status, json.loads(body)) == (400, {"Error": "Only JSON requests accepted"})
    status, body = curl(*ct, *auth, "-X", "POST", f"{server.url}/api/toggle/4")
    assert (status, json.loads(body)) == (400, {"Error": "Invalid Pin Number"})
    # without the token: refused, and nothing switched
    status, _ = curl(*ct, "-X", "POST", f"{server.url}/api/toggle/18")
    assert status == 401
    status, body = curl(*ct, *auth, f"{server.url}/api/list")
    assert json.loads(body)["18"] is not listed["18"]
