"""API v1: every endpoint and every error status, on the real app in process (make_app).

The API as a process over HTTP is pinned by tests/e2e/test_tutorial_contract.py and
tests/security/test_api_contract.py; here the point is the app's answers.
"""

from __future__ import annotations

import pytest

from tests.inprocess import AppFactory
from tests.support import JSON

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PIN_KEYS = {"pin", "id", "name", "mode", "state", "active_low", "seq", "changed_at"}

CONFIG = """
[[pins]]
pin = 18
name = "Relay"
[[pins]]
pin = 17
id = "lamp"
name = "Lamp"
active_low = true
initial = "off"
[[pins]]
pin = 27
id = "button"
mode = "input"
pull = "up"
"""


def test_pins_list_and_one_pin_by_number_or_id(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        pins = http.get("/api/v1/pins").json()["pins"]
        assert [p["pin"] for p in pins] == [18, 17, 27]
        assert all(set(p) >= PIN_KEYS for p in pins)
        lamp = http.get("/api/v1/pins/lamp").json()
        assert lamp == http.get("/api/v1/pins/17").json()
        assert (lamp["id"], lamp["name"], lamp["active_low"], lamp["state"]) == (
            "lamp", "Lamp", True, False)
        button = http.get("/api/v1/pins/button").json()
        assert (button["mode"], button["state"]) == ("input", True)  # pulled up, not inverted
        assert http.get("/api/v1/pins/GPIO18").json()["pin"] == 18


def test_switching_routes_return_the_committed_pin(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        on = http.post("/api/v1/pins/18/on")
        assert on.status_code == 200 and on.json()["state"] is True
        seq = on.json()["seq"]
        off = http.post("/api/v1/pins/gpio18/off").json()
        assert off["state"] is False and off["seq"] == seq + 1
        toggled = http.post("/api/v1/pins/18/toggle").json()
        assert toggled["state"] is True and toggled["seq"] == seq + 2
        put = http.put("/api/v1/pins/lamp", json={"state": True})
        assert put.status_code == 200 and put.json()["state"] is True
        assert http.get("/api/v1/pins/lamp").json()["state"] is True
        assert http.post("/api/v1/pins/18/on", json={}).status_code == 200


def test_active_low_pin_in_tutorial_list_is_logical(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        assert http.get("/api/list", headers=JSON).json() == {"18": False, "17": False, "27": True}


def test_pulse_returns_at_once_and_turns_off(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        pulsed = http.post("/api/v1/pins/18/pulse", json={"ms": 200}).json()
        assert pulsed["state"] is True and "pulse_until" in pulsed
        for _ in range(100):  # the turn-off is a separate committed change
            if http.get("/api/v1/pins/18").json()["seq"] > pulsed["seq"]:
                break
            import time

            time.sleep(0.05)
        after = http.get("/api/v1/pins/18").json()
        assert after["state"] is False and "pulse_until" not in after


def test_simulated_input_is_driven_like_a_button(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        pressed = http.post("/api/v1/pins/button/simulate", json={"level": "low"})
        assert pressed.status_code == 200 and pressed.json()["state"] is False
        assert http.get("/api/v1/pins/27").json()["state"] is False
        assert http.post("/api/v1/pins/18/simulate", json={"level": "low"}).status_code == 409


def test_system_and_health(make_app: AppFactory) -> None:
    server = make_app()
    with server.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        system = http.get("/api/v1/system").json()
        assert (system["backend"], system["simulated"]) == ("simulated", True)


def problem(response: object, status: int) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("GET", "/api/v1/pins/4", {}, 404),
    ("GET", "/api/v1/pins/nope", {}, 404),
    ("POST", "/api/v1/pins/4/on", {}, 404),
    ("POST", "/api/v1/pins/18/explode", {}, 404),
    ("POST", "/api/v1/pins/button/on", {}, 409),
    ("PUT", "/api/v1/pins/button", {"json": {"state": True}}, 409),
    ("PUT", "/api/v1/pins/18", {"content": b"{not json", "headers": JSON}, 400),
    ("PUT", "/api/v1/pins/18", {"json": {"state": "on"}}, 422),
    ("PUT", "/api/v1/pins/18", {"json": {"state": 1}}, 422),
    ("PUT", "/api/v1/pins/18", {"json": {}}, 422),
    ("PUT", "/api/v1/pins/18", {"json": [True]}, 422),
    ("PUT", "/api/v1/pins/18", {"json": {"state": True, "extra": 1}}, 422),
    ("PUT", "/api/v1/pins/18", {"content": b'{"state": true}',
                                "headers": {"Content-Type": "text/plain"}}, 415),
    ("PUT", "/api/v1/pins/18", {"json": {"state": True, "pad": "x" * 10_000}}, 413),
    ("POST", "/api/v1/pins/18/on", {"content": b"state=on", "headers": FORM}, 415),
    ("POST", "/api/v1/pins/18/pulse", {"json": {"ms": 0}}, 422),
    ("POST", "/api/v1/pins/18/pulse", {"json": {"ms": -5}}, 422),
    ("POST", "/api/v1/pins/18/pulse", {"json": {"ms": 10 ** 9}}, 422),
    ("POST", "/api/v1/pins/18/pulse", {"json": {"ms": "500"}}, 422),
    ("POST", "/api/v1/pins/button/simulate", {"json": {"level": "up"}}, 422),
    ("DELETE", "/api/v1/pins/18", {}, 405),
    ("GET", "/api/v1/pins/18/on", {}, 405),
    ("GET", "/api/v2/pins", {}, 404),
])
def test_every_error_is_a_problem_document_and_changes_nothing(
        make_app: AppFactory, method: str, path: str, kwargs: dict[str, object],
        status: int) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        before = http.get("/api/v1/pins").json()
        problem(http.request(method, path, **kwargs), status)  # type: ignore[arg-type]
        assert http.get("/api/v1/pins").json() == before


def test_openapi_and_docs(make_app: AppFactory) -> None:
    server = make_app()
    with server.client() as http:
        spec = http.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
        assert "/api/v1/pins/{pin}/pulse" in spec["paths"]
        docs = http.get("/docs")
        assert docs.status_code == 200 and "/api/v1/pins/{pin}" in docs.text
        assert "http://" not in docs.text.replace(server.url, "") or "cdn" not in docs.text
