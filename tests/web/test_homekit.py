"""The HomeKit page and API on the real app in process, with a fake bridge (make_app).

What the page shows (name, code, QR code, pairings), the plain-form Unpair (CSRF, 303),
the API's answers and problems, the off state, who may see the code (admins only: guests,
read and control tokens are refused and nothing is unpaired) and that no log line has it.
"""

from __future__ import annotations

import inspect
import logging
import re

import httpx
import pytest

from pinpanel.web.app import app_routes
from pinpanel.web.homekit import HomeKitPanel, display_code, setup_qr_svg
from pinpanel.web.routing import policy_of
from pinpanel.web.security import SESSION_COOKIE
from tests.fake_homekit import FakeHomeKit, setup_payload
from tests.inprocess import AppFactory, InProcessApp

CONFIG = """
[[pins]]
pin = 18
name = "Garden lights"
"""
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
ADMIN_ID = "6A5E3C1B-0F7D-4D2C-9E8A-1B2C3D4E5F60"
USER_ID = "11111111-2222-3333-4444-555555555555"


def fake() -> FakeHomeKit:
    return FakeHomeKit(pairings={ADMIN_ID: True, USER_ID: False})


def session(app: InProcessApp, http: httpx.Client) -> str:
    """Log ``http`` in with the app's admin token as a browser does; the page's CSRF token."""
    login = http.post("/login", data={"token": app.token, "next": "/homekit"})
    assert login.status_code == 303, login.text
    http.cookies.set(SESSION_COOKIE, login.cookies[SESSION_COOKIE])
    page = http.get("/homekit")
    found = CSRF_META.search(page.text)
    assert found and found.group(1)
    return found.group(1)


def test_the_page_shows_the_name_code_qr_code_and_pairings(make_app: AppFactory) -> None:
    bridge = fake()
    app = make_app(CONFIG, homekit=bridge)
    with app.client() as http:
        page = http.get("/homekit")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "pinpanel Garden" in page.text and "51826" in page.text
    assert '<p class="hk-code" aria-label="Setup code 031-45-154">031-45-154</p>' in page.text
    assert setup_qr_svg(bridge.setup_uri()) in page.text
    assert ADMIN_ID in page.text and USER_ID in page.text
    assert f'action="/homekit/pairings/{ADMIN_ID}/unpair"' in page.text
    assert bridge.unpaired == [], "a GET unpaired something"


def test_the_index_links_admins_to_the_page(make_app: AppFactory) -> None:
    app = make_app(CONFIG, homekit=fake())
    with app.client() as admin:
        assert 'href="/homekit">HomeKit</a>' in admin.get("/").text
    with app.client(app.create_token("reader", "read")) as reader:
        page = reader.get("/")
        assert page.status_code == 200 and 'href="/homekit"' not in page.text


def test_unpair_from_the_page_is_a_plain_form_with_csrf(make_app: AppFactory) -> None:
    bridge = fake()
    app = make_app(CONFIG, homekit=bridge)
    with app.anonymous() as http:
        csrf = session(app, http)
        without = http.post(f"/homekit/pairings/{USER_ID}/unpair", data={})
        assert without.status_code == 403 and bridge.unpaired == []
        done = http.post(f"/homekit/pairings/{USER_ID}/unpair", data={"csrf_token": csrf})
        assert done.status_code == 303 and done.headers["location"] == "/homekit"
        assert bridge.pairings == {ADMIN_ID: True}
        page = http.get("/homekit").text
        assert USER_ID not in page and ADMIN_ID in page
        again = http.post(f"/homekit/pairings/{USER_ID}/unpair", data={"csrf_token": csrf})
        assert again.status_code == 404 and "no HomeKit pairing" in again.text
        assert "text/html" in again.headers["content-type"]
        http.post(f"/homekit/pairings/{ADMIN_ID}/unpair", data={"csrf_token": csrf})
        assert "None: not paired yet." in http.get("/homekit").text


def test_the_api_lists_the_bridge_and_deletes_a_pairing(make_app: AppFactory) -> None:
    bridge = fake()
    app = make_app(CONFIG, homekit=bridge)
    with app.client() as http:
        state = http.get("/api/v1/homekit")
        assert state.status_code == 200 and state.headers["cache-control"] == "no-store"
        assert state.json() == {
            "enabled": True, "name": "pinpanel Garden", "port": 51826, "paired": True,
            "controllers": [{"id": ADMIN_ID, "admin": True, "name": ""},
                            {"id": USER_ID, "admin": False, "name": ""}],
            "setup_code": "031-45-154", "setup_uri": bridge.setup_uri()}
        gone = http.delete("/api/v1/homekit/pairings/nobody")
        assert gone.status_code == 404
        assert gone.headers["content-type"].startswith("application/problem+json")
        assert gone.json()["detail"] == "no HomeKit pairing 'nobody'"
        assert http.delete(f"/api/v1/homekit/pairings/{USER_ID}").status_code == 204
        assert http.delete(f"/api/v1/homekit/pairings/{ADMIN_ID}").status_code == 204
        after = http.get("/api/v1/homekit").json()
        assert after["paired"] is False and after["controllers"] == []
    assert bridge.unpaired == ["nobody", USER_ID, ADMIN_ID]


def test_with_homekit_off_the_page_says_how_to_turn_it_on(make_app: AppFactory) -> None:
    app = make_app(CONFIG)
    with app.client() as http:
        page = http.get("/homekit")
        assert page.status_code == 200
        assert "HomeKit is off: set [homekit] enabled = true" in page.text
        assert "pip install 'pinpanel[homekit]'" in page.text.replace("&#39;", "'")
        assert http.get("/api/v1/homekit").json() == {"enabled": False}
        off = http.delete(f"/api/v1/homekit/pairings/{USER_ID}")
        assert off.status_code == 404 and "HomeKit is off" in off.json()["detail"]
        form = http.post(f"/homekit/pairings/{USER_ID}/unpair")
        assert form.status_code == 404 and "HomeKit is off" in form.text


def test_enabled_without_a_running_bridge_the_page_points_at_the_log(
        make_app: AppFactory) -> None:
    """[homekit] on but no bridge handed over (hap-python missing, the port taken): the
    page must not tell the admin to set a key that is already set."""
    app = make_app("[homekit]\nenabled = true\n" + CONFIG)
    with app.client() as http:
        page = http.get("/homekit")
        assert page.status_code == 200
        assert "HomeKit is enabled but the bridge is not running" in page.text
        assert "set [homekit] enabled = true" not in page.text
        assert http.get("/api/v1/homekit").json() == {"enabled": False}
        off = http.delete(f"/api/v1/homekit/pairings/{USER_ID}")
        assert off.status_code == 404 and "not running" in off.json()["detail"]


def test_the_page_says_which_file_a_full_reset_deletes(make_app: AppFactory) -> None:
    app = make_app(CONFIG, homekit=fake())
    with app.client() as http:
        page = http.get("/homekit").text
    assert f"<code>{app.data_dir / 'homekit.state'}</code>" in page


def test_an_admin_names_a_controller_over_the_api_and_on_the_page(
        make_app: AppFactory) -> None:
    bridge = fake()
    app = make_app(CONFIG, homekit=bridge)
    with app.client() as http:
        named = http.put(f"/api/v1/homekit/pairings/{ADMIN_ID}", json={"name": "  Our  home "})
        assert named.status_code == 200
        assert named.json() == {"id": ADMIN_ID, "admin": True, "name": "Our home"}
        for body in ({"name": "x" * 41}, {"name": 3}, {"nick": "a"}, {"name": "a\u0007b"}):
            refused = http.put(f"/api/v1/homekit/pairings/{ADMIN_ID}", json=body)
            assert refused.status_code == 422, body
            assert refused.headers["content-type"].startswith("application/problem+json")
        assert http.put("/api/v1/homekit/pairings/nobody",
                        json={"name": "a"}).status_code == 404
        assert bridge.names == {ADMIN_ID: "Our home"}
        page = http.get("/homekit").text
        assert "Our home" in page and f"/homekit/pairings/{USER_ID}/name" in page
    with app.anonymous() as browser:  # the page's form: a session and its CSRF token
        csrf = session(app, browser)
        refused = browser.post(f"/homekit/pairings/{USER_ID}/name", data={"name": "x"})
        assert refused.status_code == 403 and USER_ID not in bridge.names
        saved = browser.post(f"/homekit/pairings/{USER_ID}/name",
                             data={"csrf_token": csrf, "name": "Guest flat"})
        assert saved.status_code == 303 and saved.headers["location"] == "/homekit"
        assert bridge.names[USER_ID] == "Guest flat"


def test_the_fake_bridge_has_exactly_the_protocol_s_members() -> None:
    """The stand-in the page is tested with cannot drift from the seam the adapter codes to."""
    members = {"name", "port", "setup_code", "setup_uri", "controllers", "unpair", "rename"}
    assert {m for m in vars(HomeKitPanel) if not m.startswith("_")} == members
    for method in ("setup_code", "setup_uri", "controllers", "unpair", "rename"):
        assert (inspect.signature(getattr(FakeHomeKit, method))
                == inspect.signature(getattr(HomeKitPanel, method))), method
    assert inspect.iscoroutinefunction(FakeHomeKit.unpair)
    assert inspect.iscoroutinefunction(FakeHomeKit.rename)
    bridge = fake()
    assert isinstance(bridge.name, str) and isinstance(bridge.port, int)


def test_every_homekit_route_is_admin_and_the_unpair_routes_are_unsafe_methods() -> None:
    """The security matrix (tests/security) probes these from app_routes(); this pins the
    policy it checks them against, so a route loosened to control fails here by name."""
    routes = {str(r.name): r for r in app_routes() if str(getattr(r, "path", "")).startswith(
        ("/homekit", "/api/v1/homekit"))}
    assert {name: policy_of(route) for name, route in routes.items()} == {
        "homekit": "admin", "homekit_pairing_delete": "admin", "homekit_page": "admin",
        "homekit_unpair": "admin", "homekit_pairing_put": "admin", "homekit_rename": "admin"}
    assert routes["homekit_pairing_delete"].methods == {"DELETE"}
    assert routes["homekit_unpair"].methods == {"POST"}
    assert routes["homekit_pairing_put"].methods == {"PUT"}
    assert routes["homekit_rename"].methods == {"POST"}


@pytest.mark.parametrize("scope", ["read", "control", "guest"])
def test_only_admins_see_the_code_or_unpair(make_app: AppFactory, scope: str) -> None:
    bridge = fake()
    app = make_app(CONFIG, homekit=bridge)
    if scope == "guest":
        with app.client() as admin:
            made = admin.post("/api/v1/guests", json={"name": "plumber",
                                                      "pins": {"18": ["switch"]}})
        token = made.json()["link"].split("token=")[1]
    else:
        token = app.create_token(scope, scope)
    with app.client(token) as http:
        for method, path in [("GET", "/homekit"), ("GET", "/api/v1/homekit"),
                             ("DELETE", f"/api/v1/homekit/pairings/{USER_ID}"),
                             ("PUT", f"/api/v1/homekit/pairings/{USER_ID}"),
                             ("POST", f"/homekit/pairings/{USER_ID}/name"),
                             ("POST", f"/homekit/pairings/{USER_ID}/unpair")]:
            response = http.request(method, path)
            assert response.status_code == 403, (method, path, response.text)
            assert "031" not in response.text and "X-HM" not in response.text
    assert bridge.unpaired == [] and len(bridge.pairings) == 2 and bridge.names == {}


def test_the_setup_code_is_in_no_log(make_app: AppFactory,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bridge = fake()
    app = make_app(CONFIG, homekit=bridge)
    with app.client() as http:
        assert http.get("/homekit").status_code == 200
        assert http.get("/api/v1/homekit").status_code == 200
        http.delete("/api/v1/homekit/pairings/nobody")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (bridge.code, bridge.code.replace("-", ""), bridge.setup_uri()):
        assert secret not in logged


def test_the_code_looks_like_a_homekit_label_and_the_payload_is_hap_s() -> None:
    assert display_code("03145154") == display_code("031-45-154") == "031-45-154"
    assert display_code("not a code") == "not a code"
    uri = setup_payload("518-08-582", "7OSX")
    assert re.fullmatch(r"X-HM://[0-9A-Z]{9}7OSX", uri)
    value = int(uri[7:16], 36)  # read back: the fields the iPhone unpacks
    assert (value >> 43, value >> 31 & 0xFF, value >> 27 & 0xF, value & 0x7FFFFFF) == (
        0, 2, 2, 51808582)
