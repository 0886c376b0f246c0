"""Every route x every kind of caller, against one real server: who gets in, who is refused.

Callers: no credentials, a bad token, a revoked token, read / control / admin tokens, a
browser session (of a control token) with and without its CSRF token, and a cross-origin
form post that even carries the session cookie. Where a request is refused, the pins are
read back with a trusted token to prove nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pinpanel.web.app import app_routes
from tests.security.conftest import (
    Session,
    Spawn,
    browser_session,
    is_security_refusal,
    make_tokens,
    pin_snapshot,
    revoke,
)
from tests.security.routes import Probe, probes
from tests.support import ServerProcess

CONFIG = """
[server]
cors_origins = ["http://app.example:3000"]
[auth]
login_attempts_per_minute = 1000
[[pins]]
pin = 18
[[pins]]
pin = 23
[[pins]]
pin = 24
[[pins]]
pin = 27
id = "button"
mode = "input"
"""
RANK = {"read": 1, "control": 2, "admin": 3}
CALLERS = ("none", "bad", "revoked", "read", "control", "admin", "session",
           "session-without-csrf", "cross-origin-form")
PROBES = probes(app_routes())
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Cast:
    server: ServerProcess
    tokens: dict[str, str]
    session: Session
    trusted: httpx.Client  # the server's own admin token, for reading pins back
    raw: httpx.Client  # sends exactly the headers given (its cookie jar is emptied)


@pytest.fixture(scope="module")
def cast(spawn: Spawn) -> Iterator[Cast]:
    server = spawn(CONFIG)
    tokens = make_tokens(server, read="read", control="control", admin="admin",
                         revoked="admin")
    revoke(server, "revoked")
    tokens["bad"] = "pp_" + "x" * 43
    with server.client() as trusted, httpx.Client(base_url=server.url, timeout=10) as raw:
        yield Cast(server, tokens, browser_session(server, tokens["control"]), trusted, raw)


def expected_refusal(policy: str, caller: str, method: str) -> int | None:
    """The status the security layer must answer with, or None if it must let it through."""
    if caller == "cross-origin-form":
        return 403
    unsafe = method in UNSAFE
    if policy == "open":
        return 403 if caller == "session-without-csrf" and unsafe else None
    if caller in ("none", "bad", "revoked"):
        return 401
    scope = "control" if caller.startswith("session") else caller
    if RANK[scope] < RANK[policy]:
        return 403
    if caller == "session-without-csrf" and unsafe:
        return 403
    return None


def build(cast: Cast, probe: Probe, caller: str) -> dict[str, Any]:
    """The request ``caller`` would send for ``probe``."""
    server = cast.server
    headers = dict(probe.headers)
    form = dict(probe.form) if probe.form is not None else None
    method = probe.method
    session = cast.session
    if probe.name == "login_submit" and form is not None:
        form["token"] = cast.tokens["read"]
    if caller in ("bad", "revoked", "read", "control", "admin"):
        headers["Authorization"] = f"Bearer {cast.tokens[caller]}"
    elif caller.startswith("session") or caller == "cross-origin-form":
        if probe.name == "logout":  # logging out ends the session: use one of its own
            session = browser_session(server, cast.tokens["control"])
        headers.update(session.header)
        if caller == "cross-origin-form":
            method = "POST"
            headers.update({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
            return {"method": method, "url": probe.path, "headers": headers,
                    "data": {"csrf_token": session.csrf}}
        headers.update({"Origin": server.url, "Sec-Fetch-Site": "same-origin"})
        if caller == "session" and method in UNSAFE:
            if form is not None:
                form["csrf_token"] = session.csrf
            else:
                headers["X-CSRF-Token"] = session.csrf
    return {"method": method, "url": probe.path, "headers": headers, "json": probe.json,
            "data": form}


def send(http: httpx.Client, request: dict[str, Any]) -> httpx.Response:
    """One request, not following redirects; a stream (the event stream) is cut after its
    headers. Cookies a response set are dropped, so they cannot leak into the next caller."""
    try:
        with http.stream(**request) as response:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                response.read()
            return response
    finally:
        http.cookies.clear()


def settle(http: httpx.Client, answer: httpx.Response | None = None) -> None:
    """Wait out a pulse a let-through request started, so the next check sees a still board.

    No pin may be pulsing, and the pulsed pin's turn-off must be on record: it is a commit of
    its own (a seq past the pulse's answer), which lands a moment after the timer clears
    ``pulse_until``, and must not land inside a later check's before-and-after.
    """
    pulsed: tuple[int, int] | None = None
    if answer is not None and answer.status_code == 200:
        body = answer.json()
        if isinstance(body, dict) and body.get("pulse_until"):
            pulsed = (body["pin"], body["seq"])
    deadline = time.monotonic() + 5  # a hang guard, not a timing assertion
    while time.monotonic() < deadline:
        pins = http.get("/api/v1/pins").json()["pins"]
        if not any("pulse_until" in p for p in pins) and (pulsed is None or any(
                p["pin"] == pulsed[0] and p["seq"] > pulsed[1] for p in pins)):
            return
        time.sleep(0.02)
    raise AssertionError("a pulse did not finish within 5 s")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_route_and_caller(cast: Cast, probe: Probe, caller: str) -> None:
    policy = probe.policy
    assert policy is not None, probe.id
    refusal = expected_refusal(policy, caller, probe.method)
    request = build(cast, probe, caller)
    before = pin_snapshot(cast.server, cast.trusted) if refusal else None
    response = send(cast.raw, request)
    assert response.status_code < 500, response.text
    if refusal is None:
        assert not is_security_refusal(response), (response.status_code, response.text)
        if probe.name == "pin_pulse":
            settle(cast.trusted, response)
        return
    assert response.status_code == refusal, response.text
    assert is_security_refusal(response)
    if refusal == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert pin_snapshot(cast.server, cast.trusted) == before, "a refused request changed a pin"


def test_the_matrix_switches_pins_when_allowed(cast: Cast) -> None:
    """The let-through side is real: a control token and a session with CSRF do switch."""
    before = pin_snapshot(cast.server)["pins"][18][0]
    with httpx.Client(base_url=cast.server.url) as http:
        by_token = http.post("/api/v1/pins/18/toggle",
                             headers={"Authorization": f"Bearer {cast.tokens['control']}"})
        assert by_token.status_code == 200 and by_token.json()["state"] is not before
        by_form = http.post("/toggle?pin=18", data={"csrf_token": cast.session.csrf},
                            headers={**cast.session.header, "Origin": cast.server.url})
        assert by_form.status_code == 303
    assert pin_snapshot(cast.server)["pins"][18][0] is before
