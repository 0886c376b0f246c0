"""The tutorial's curl commands, verbatim plus the token header, against a real server."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.security.conftest import Spawn, make_tokens


def curl(*args: str) -> tuple[int, str]:
    binary = shutil.which("curl")
    if binary is None:
        pytest.fail("curl is needed (Debian: apt install curl)")
    done = subprocess.run([binary, "-s", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_tutorials_curl_contract_with_a_control_token(spawn: Spawn) -> None:
    server = spawn()
    token = make_tokens(server, tutorial="control")["tutorial"]
    auth = ("-H", f"Authorization: Bearer {token}")
    ct = ("-H", "Content-Type: application/json")
    status, body = curl(*ct, *auth, f"{server.url}/api/list")
    assert (status, json.loads(body)) == (200, {"18": False, "23": False, "24": False})
    status, body = curl(*ct, *auth, "-X", "POST", f"{server.url}/api/toggle/18")
    assert (status, json.loads(body)) == (200, {"Success": True})
    status, body = curl(*ct, *auth, f"{server.url}/api/list")
    assert json.loads(body) == {"18": True, "23": False, "24": False}
    status, body = curl(*auth, f"{server.url}/api/list")
    assert (status, json.loads(body)) == (400, {"Error": "Only JSON requests accepted"})
    status, body = curl(*ct, *auth, "-X", "POST", f"{server.url}/api/toggle/4")
    assert (status, json.loads(body)) == (400, {"Error": "Invalid Pin Number"})
    # without the token: refused, and nothing switched
    status, _ = curl(*ct, "-X", "POST", f"{server.url}/api/toggle/18")
    assert status == 401
    status, body = curl(*ct, *auth, f"{server.url}/api/list")
    assert json.loads(body)["18"] is True
