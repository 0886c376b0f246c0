"""Guest links and per-pin tokens against one real server: every route x a pin-limited
guest, the pins it may not touch left as they were, the stream and history of its pins only.

The guest link ``visitor`` (made over the admin API, as the page's form does) may switch
``lights`` (BCM 18) on and off and pulse the ``garage`` (BCM 23), nothing else; BCM 24
and the input ``button`` are not its. ``expired`` is a guest link whose lifetime ended
before the test began (made with a creation time in the past: no waiting on a clock);
``revoked`` was revoked over the API. Sessions opened from a link die with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pinpanel import auth
from pinpanel.web.app import app_routes
from pinpanel.web.routing import pin_scoped
from tests.security.conftest import (
    Session,
    Spawn,
    browser_session,
    is_security_refusal,
    opened_store,
    pin_snapshot,
)
from tests.security.routes import Probe, probes
from tests.security.test_matrix import send
from tests.security.test_matrix import settle as settle_pulses
from tests.support import ServerProcess, run_cli

CONFIG = """
[auth]
login_attempts_per_minute = 1000
[[pins]]
pin = 18
id = "lights"
name = "Garden lights"
[[pins]]
pin = 23
id = "garage"
name = "Garage door"
pulse_ms = 20
[[pins]]
pin = 24
[[pins]]
pin = 27
id = "button"
mode = "input"
"""
GRANTS = {"lights": ["switch"], "garage": ["pulse"]}
GUEST_PINS = {18, 23}
PROBES = probes(app_routes())
#: What the visitor's request for each pin-scoped probe is (tests/security/routes.py picks
#: BCM 18 and "toggle" for v1, 23 for the tutorial's toggle, 24 for the form, the button
#: for simulate): let through, or refused for the other action or the other pin.
PIN_SCOPED_OUTCOME = {
    "page": "allowed", "pins": "allowed", "pin": "allowed", "pin_put": "allowed",
    "pin_switch": "allowed", "compat_list": "allowed", "events": "allowed",
    "history": "allowed", "form_value": "allowed",
    "form_pulse": "allowed",  # no ?pin= in the probe: the tutorial's 400, not a refusal
    "pin_pulse": "other action", "pin_fade": "other action", "compat_toggle": "other action",
    "form_toggle": "other pin", "pin_simulate": "other pin",
}
CALLERS = ("guest", "guest-session", "expired", "revoked", "revoked-session")


@dataclass
class Cast:
    server: ServerProcess
    admin: httpx.Client
    raw: httpx.Client
    links: dict[str, str]  # name -> the token in its login link
    sessions: dict[str, Session]


def settle(admin: httpx.Client) -> None:
    """Wait until no pulse is pending and the garage (only ever pulsed here) is off again:
    a pulse's turn-off is its own commit, which must not land inside a later check."""
    settle_pulses(admin)
    deadline = time.monotonic() + 5  # a hang guard, not a timing assertion
    while admin.get("/api/v1/pins/23").json()["state"]:
        assert time.monotonic() < deadline, "the garage's pulse did not end within 5 s"
        time.sleep(0.02)


def token_of(link: str) -> str:
    return link.split("token=", 1)[1]


@pytest.fixture(scope="module")
def cast(spawn: Spawn) -> Iterator[Cast]:
    server = spawn(CONFIG)
    with server.client() as admin, httpx.Client(base_url=server.url, timeout=10) as raw:
        links = {}
        for name in ("visitor", "revoked"):
            made = admin.post("/api/v1/guests", json={"name": name, "pins": GRANTS,
                                                      "lifetime": "1d"})
            assert made.status_code == 201, made.text
            links[name] = token_of(made.json()["link"])
        with opened_store(server) as store:  # its hour ended two hours ago
            links["expired"] = auth.create_token(
                store, "expired", "control", kind="guest", lifetime_s=3600,
                grants=auth.make_grants({18: ["switch"], 23: ["pulse"]}),
                now=time.time() - 7200)
        sessions = {name: browser_session(server, links[name])
                    for name in ("visitor", "revoked")}
        assert admin.delete("/api/v1/guests/revoked").status_code == 204
        yield Cast(server, admin, raw, links, sessions)


def expected(probe: Probe, caller: str) -> tuple[int | None, str]:
    """(status the caller must be refused with, or None; why)."""
    if probe.policy == "open":
        return None, "open route"
    if caller in ("expired", "revoked", "revoked-session"):
        return 401, "ended link"
    if not pin_scoped(next(r for r in app_routes() if getattr(r, "name", None) == probe.name)):
        return 403, "not a pin route"
    outcome = PIN_SCOPED_OUTCOME[probe.name]  # a new pin route: say what a guest gets
    return (None if outcome == "allowed" else 403), outcome


def build(cast: Cast, probe: Probe, caller: str) -> dict[str, Any]:
    headers = dict(probe.headers)
    form = dict(probe.form) if probe.form is not None else None
    if probe.name == "login_submit" and form is not None:
        form["token"] = cast.links["visitor"]
    if caller in ("guest", "expired", "revoked"):
        link = cast.links["visitor" if caller == "guest" else caller]
        headers["Authorization"] = f"Bearer {link}"
    else:
        name = "visitor" if caller == "guest-session" else "revoked"
        session = cast.sessions[name]
        if probe.name == "logout" and caller == "guest-session":
            session = browser_session(cast.server, cast.links["visitor"])
        headers.update(session.header)
        headers.update({"Origin": cast.server.url, "Sec-Fetch-Site": "same-origin"})
        if probe.method not in ("GET", "HEAD"):
            if form is not None:
                form["csrf_token"] = session.csrf
            else:
                headers["X-CSRF-Token"] = session.csrf
    return {"method": probe.method, "url": probe.path, "headers": headers, "json": probe.json,
            "data": form}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_route_and_guest(cast: Cast, probe: Probe, caller: str) -> None:
    refusal, why = expected(probe, caller)
    before = pin_snapshot(cast.server, cast.admin)
    response = send(cast.raw, build(cast, probe, caller))
    assert response.status_code < 500, response.text
    if refusal is None:
        assert not is_security_refusal(response), (why, response.status_code, response.text)
        if probe.name in ("pin_pulse", "pin_put", "pin_switch"):
            settle(cast.admin)
        return
    assert response.status_code == refusal, (why, response.text)
    assert is_security_refusal(response), why
    assert pin_snapshot(cast.server, cast.admin) == before, f"a refused request ({why}) " \
        "changed a pin"


# -- explicit cases: each path x allowed / other action / other pin ----------------------------

CASES = [
    # (method, path, json, form, expected outcome)
    ("POST", "/api/v1/pins/lights/on", None, None, "allowed"),
    ("POST", "/api/v1/pins/18/off", None, None, "allowed"),
    ("POST", "/api/v1/pins/18/toggle", None, None, "allowed"),
    ("PUT", "/api/v1/pins/18", {"state": True}, None, "allowed"),
    ("POST", "/api/v1/pins/garage/pulse", None, None, "allowed"),
    ("POST", "/api/v1/pins/18/pulse", None, None, "other action"),
    ("POST", "/api/v1/pins/garage/on", None, None, "other action"),
    ("POST", "/api/v1/pins/garage/toggle", None, None, "other action"),
    ("PUT", "/api/v1/pins/garage", {"state": True}, None, "other action"),
    ("POST", "/api/v1/pins/24/on", None, None, "other pin"),
    ("PUT", "/api/v1/pins/24", {"state": True}, None, "other pin"),
    ("POST", "/api/v1/pins/24/pulse", None, None, "other pin"),
    ("GET", "/api/v1/pins/24", None, None, "other pin"),
    ("POST", "/api/v1/pins/button/simulate", {"level": "low"}, None, "other pin"),
    ("GET", "/api/v1/history?pin=24", None, None, "other pin"),
    ("POST", "/api/toggle/18", {}, None, "allowed"),
    ("POST", "/api/toggle/23", {}, None, "other action"),
    ("POST", "/api/toggle/24", {}, None, "other pin"),
    ("POST", "/toggle?pin=18", None, {}, "allowed"),
    ("POST", "/toggle?pin=23", None, {}, "other action"),
    ("POST", "/toggle?pin=24", None, {}, "other pin"),
    ("POST", "/pins/18/value", None, {"value": "100"}, "allowed"),
    ("POST", "/pulse?pin=23", None, {}, "allowed"),
    ("POST", "/pulse?pin=18", None, {}, "other action"),
    ("POST", "/pulse?pin=24", None, {}, "other pin"),
    ("POST", "/pins/23/value", None, {"value": "100"}, "other action"),
    ("POST", "/pins/24/value", None, {"value": "100"}, "other pin"),
]


@pytest.mark.parametrize("via", ("bearer", "session"))
@pytest.mark.parametrize(("method", "path", "body", "form", "outcome"), CASES,
                         ids=[f"{c[0]} {c[1]} ({c[4]})" for c in CASES])
def test_guest_paths(cast: Cast, via: str, method: str, path: str, body: Any,
                     form: dict[str, str] | None, outcome: str) -> None:
    headers: dict[str, str] = {}
    if path.startswith("/api/toggle"):
        headers["Content-Type"] = "application/json"
    if via == "bearer":
        headers["Authorization"] = f"Bearer {cast.links['visitor']}"
    else:
        session = cast.sessions["visitor"]
        headers.update({**session.header, "Origin": cast.server.url,
                        "Sec-Fetch-Site": "same-origin"})
        if form is not None:
            form = {**form, "csrf_token": session.csrf}
        else:
            headers["X-CSRF-Token"] = session.csrf
    if outcome == "allowed" and path.startswith(("/api/v1/pins/", "/pins/", "/pulse")) and \
            method != "GET":
        # From the opposite state, so the allowed change is a change (seq moves).
        target = "18" if "18" in path or "lights" in path else "23"
        off_first = path.endswith(("/on", "/pulse", "/value")) or body == {"state": True} \
            or path.startswith("/pulse")
        cast.admin.post(f"/api/v1/pins/{target}/{'off' if off_first else 'on'}")
        settle(cast.admin)
    before = pin_snapshot(cast.server, cast.admin)
    response = send(cast.raw, {"method": method, "url": path, "headers": headers,
                               "json": body if form is None else None, "data": form})
    after = pin_snapshot(cast.server, cast.admin)
    if outcome == "allowed":
        assert response.status_code in (200, 303), response.text
        if method != "GET":
            assert after["seq"] > before["seq"], "an allowed change committed nothing"
        settle(cast.admin)
        return
    assert response.status_code == 403, response.text
    assert is_security_refusal(response)
    assert after == before, "a refused request changed a pin"


def test_guest_sees_only_its_pins_and_the_audit_names_the_link(cast: Cast) -> None:
    guest = {"Authorization": f"Bearer {cast.links['visitor']}"}
    pins = cast.raw.get("/api/v1/pins", headers=guest).json()["pins"]
    assert {p["pin"] for p in pins} == GUEST_PINS
    listed = cast.raw.get("/api/list", headers={**guest, "Content-Type": "application/json"})
    assert set(listed.json()) == {"18", "23"}
    assert cast.raw.post("/api/v1/pins/18/toggle", headers=guest).status_code == 200
    cast.admin.post("/api/v1/pins/24/toggle").raise_for_status()
    mine = cast.raw.get("/api/v1/history?limit=200", headers=guest).json()["items"]
    assert mine and {item["pin"] for item in mine} <= GUEST_PINS
    everything = cast.admin.get("/api/v1/history?limit=5").json()["items"]
    assert any(item["pin"] == 24 for item in everything)
    assert any(item["pin"] == 18 and item["actor"] == "guest:visitor" for item in mine)
    page = cast.raw.get("/", headers={**guest, "Accept": "text/html"})
    assert 'id="pin-18"' in page.text and 'id="pin-23"' in page.text
    assert 'id="pin-24"' not in page.text and 'id="pin-27"' not in page.text
    assert "Toggle Garage door" not in page.text  # pulse only: no Toggle button
    assert 'action="/pulse?pin=23"' in page.text  # its Pulse works without a script
    assert "Pulse Garage door" in page.text and "Toggle Garden lights" in page.text
    assert "Guest links" not in page.text


def test_event_stream_shows_only_the_guests_pins(cast: Cast) -> None:
    guest = {"Authorization": f"Bearer {cast.links['visitor']}"}
    events: list[tuple[str, Any]] = []
    with httpx.Client(base_url=cast.server.url, timeout=10) as http, \
            http.stream("GET", "/api/v1/events", headers=guest) as stream:
        lines = stream.iter_lines()
        kind = ""
        for line in lines:
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if kind == "snapshot":
                    break
        # An other pin's change first, then one of the guest's: once the second arrives,
        # the first would have been sent before it (one ordered stream).
        cast.admin.post("/api/v1/pins/24/toggle").raise_for_status()
        cast.admin.post("/api/v1/pins/18/toggle").raise_for_status()
        for line in lines:
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                events.append((kind, data))
                if kind == "change" and data["pin"]["pin"] == 18:
                    break
    snapshot = events[0][1]
    assert {p["pin"] for p in snapshot["pins"]} == GUEST_PINS
    changes = [data["pin"]["pin"] for kind, data in events if kind == "change"]
    assert changes[-1] == 18 and 24 not in changes


def test_revoked_link_ends_its_sessions_and_the_list_says_so(cast: Cast) -> None:
    listed = cast.admin.get("/api/v1/guests").json()["guests"]
    names = {g["name"] for g in listed}
    assert "visitor" in names and "revoked" not in names
    visitor = next(g for g in listed if g["name"] == "visitor")
    assert visitor["pins"] == {"18": ["off", "on", "toggle"], "23": ["pulse"]}
    assert visitor["actor"] == "guest:visitor" and visitor["expires_at"]
    session = cast.sessions["revoked"]
    gone = cast.raw.get("/api/v1/pins", headers=session.header)
    assert gone.status_code == 401
    # the guest may not manage guests or tokens, nor see sensors or the system
    guest = {"Authorization": f"Bearer {cast.links['visitor']}"}
    for path in ("/api/v1/guests", "/api/v1/tokens", "/api/v1/system", "/metrics"):
        assert cast.raw.get(path, headers=guest).status_code == 403, path


def test_guest_link_made_on_the_page_without_script(cast: Cast) -> None:
    """The admin's form: a plain POST gives the link and its QR code; the link logs in."""
    with opened_store(cast.server) as store:
        admin_token = auth.create_token(store, "page-admin", "admin")
    session = browser_session(cast.server, admin_token)
    headers = {**session.header, "Origin": cast.server.url, "Sec-Fetch-Site": "same-origin"}
    form = cast.raw.get("/guests", headers=headers)
    assert form.status_code == 200 and 'value="23:pulse"' in form.text
    made = cast.raw.post("/guests", headers=headers, data={
        "csrf_token": session.csrf, "name": "plumber", "lifetime": "1h",
        "grant": ["23:pulse"]})
    assert made.status_code == 201, made.text
    assert "<svg" in made.text and "/login?token=pp_" in made.text
    link = made.text.split('class="guest-link" href="', 1)[1].split('"', 1)[0]
    confirm = cast.raw.get(link.replace(cast.server.url, "").replace("&amp;", "&"))
    assert confirm.status_code == 200 and "Sign in" in confirm.text  # GET changes nothing
    plumber = browser_session(cast.server, token_of(link))
    pins = cast.raw.get("/api/v1/pins", headers=plumber.header).json()["pins"]
    assert [p["pin"] for p in pins] == [23]
    phone = cast.raw.post("/guests/phone", headers=headers, data={
        "csrf_token": session.csrf, "name": "second-phone", "scope": "control"})
    assert phone.status_code == 201 and "<svg" in phone.text
    revoked = cast.raw.post("/guests/plumber/revoke", headers=headers,
                            data={"csrf_token": session.csrf})
    assert revoked.status_code == 303
    assert cast.raw.get("/api/v1/pins", headers=plumber.header).status_code == 401


def test_token_with_pin_scopes_from_the_cli(cast: Cast) -> None:
    done = run_cli("token", "create", "garage-app", "--pins", "garage,18", "--actions",
                   "pulse", "--expires", "1d", "--config", str(cast.server.config_path),
                   "--data-dir", str(cast.server.data_dir))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    bearer = {"Authorization": f"Bearer {token}"}
    assert {p["pin"] for p in cast.raw.get("/api/v1/pins", headers=bearer).json()["pins"]} \
        == {18, 23}
    assert cast.raw.post("/api/v1/pins/garage/pulse", headers=bearer).status_code == 200
    settle(cast.admin)
    before = pin_snapshot(cast.server, cast.admin)
    refused = cast.raw.post("/api/v1/pins/18/toggle", headers=bearer)
    assert refused.status_code == 403
    assert pin_snapshot(cast.server, cast.admin) == before
    listing = run_cli("token", "list", "--data-dir", str(cast.server.data_dir))
    line = next(x for x in listing.stdout.splitlines() if x.startswith("garage-app"))
    assert '"18": ["pulse"]' in line and "expires" in line
    bad = run_cli("token", "create", "oops", "--pins", "nope", "--config",
                  str(cast.server.config_path), "--data-dir", str(cast.server.data_dir))
    assert bad.returncode != 0 and "no pin 'nope'" in bad.stderr


def test_token_api_takes_pin_scopes(cast: Cast) -> None:
    made = cast.admin.post("/api/v1/tokens", json={"name": "lights-app", "pins": ["lights"],
                                                   "actions": ["on"], "expires": "1w"})
    assert made.status_code == 201, made.text
    assert made.json()["pins"] == {"18": ["on"]} and made.json()["expires_at"]
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    before = pin_snapshot(cast.server, cast.admin)
    assert cast.raw.post("/api/v1/pins/18/off", headers=bearer).status_code == 403
    assert pin_snapshot(cast.server, cast.admin) == before
    assert cast.raw.post("/api/v1/pins/18/on", headers=bearer).status_code == 200
    for body in ({"name": "x1", "pins": ["nope"]}, {"name": "x2", "pins": [18],
                                                    "actions": ["explode"]},
                 {"name": "x3", "expires": "soon"}):
        assert cast.admin.post("/api/v1/tokens", json=body).status_code == 422, body
