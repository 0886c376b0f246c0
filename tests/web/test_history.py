"""GET /api/v1/history and the page's timelines, on the real app in process (make_app)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.e2e.audit import all_history, assert_chained, assert_gapless
from tests.inprocess import AppFactory, InProcessApp
from tests.support import JSON

CONFIG = """
[[pins]]
pin = 18
[[pins]]
pin = 23
id = "lamp"
name = "Lamp"
[[pins]]
pin = 24
"""


@pytest.fixture
def server(make_app: AppFactory) -> InProcessApp:
    return make_app(CONFIG)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """One app for the tests that only read (starting one per case is slow on a Pi)."""
    with InProcessApp(tmp_path_factory.mktemp("shared") / "data", CONFIG).running() as server:
        yield server


def page(http: httpx.Client, **params: Any) -> dict[str, Any]:
    response = http.get("/api/v1/history", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next"}
    return body


def test_every_change_is_recorded_with_who_what_when_and_where(server: InProcessApp) -> None:
    phone = server.create_token("phone", "control")
    with server.client(token=phone) as http:
        http.post("/api/v1/pins/18/on")
        http.post("/toggle?pin=23", follow_redirects=False)
        http.post("/api/toggle/24", headers=JSON)
        http.put("/api/v1/pins/lamp", json={"state": False})
    with server.client() as http:
        items = page(http)["items"]
    assert [(r["seq"], r["pin"], r["id"], r["old"], r["new"], r["cause"]) for r in items] == [
        (7, 23, "lamp", True, False, "api"),
        (6, 24, "gpio24", False, True, "api"),
        (5, 23, "lamp", False, True, "form"),
        (4, 18, "gpio18", False, True, "api"),
        (3, 24, "gpio24", None, False, "startup"),
        (2, 23, "lamp", None, False, "startup"),
        (1, 18, "gpio18", None, False, "startup"),
    ]
    for row in items[:4]:
        assert (row["actor"], row["client"]) == ("phone", "127.0.0.1")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["at"])
    assert (items[-1]["actor"], items[-1]["client"]) == ("system", None)
    assert [r["at"] for r in items] == sorted((r["at"] for r in items), reverse=True)


def toggle_many(server: InProcessApp, count: int, pins: tuple[int, ...] = (18, 23, 24),
                clients: int = 6) -> None:
    def run(start: int) -> None:
        with server.client() as http:
            for i in range(start, count, clients):
                assert http.post(f"/api/v1/pins/{pins[i % len(pins)]}/toggle").status_code == 200

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_paging_with_the_cursor_visits_every_row_once(server: InProcessApp) -> None:
    toggle_many(server, 40)
    with server.client() as http:
        everything = page(http, limit=1000)
        assert everything["next"] is None and len(everything["items"]) == 43
        seen: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            body = page(http, limit=7, **({"cursor": cursor} if cursor else {}))
            assert len(body["items"]) <= 7
            seen += body["items"]
            pages += 1
            cursor = body["next"]
            if cursor is None:
                break
            assert isinstance(cursor, str)
        assert seen == everything["items"] and pages == 7
        # New changes arriving while paging do not shift the pages already walked.
        first = page(http, limit=10)
        http.post("/api/v1/pins/18/toggle")
        second = page(http, limit=10, cursor=first["next"])
        assert second["items"][0]["seq"] == first["items"][-1]["seq"] - 1
        default = page(http)
        assert len(default["items"]) == 44 and default["next"] is None  # limit 100


def test_pin_filters_take_bcm_numbers_and_ids_and_repeat(server: InProcessApp) -> None:
    toggle_many(server, 12)
    with server.client() as http:
        lamp = page(http, pin="lamp")["items"]
        assert lamp and {r["pin"] for r in lamp} == {23}
        assert page(http, pin="23")["items"] == lamp
        both = page(http, pin=["18", "lamp"])["items"]
        assert {r["pin"] for r in both} == {18, 23}
        assert len(both) == len(lamp) + len(page(http, pin=18)["items"])
        assert page(http, pin=["lamp", "23"])["items"] == lamp  # the same pin twice
        assert_chained(all_history(http, pin=["18", "lamp"]))


def test_since_and_until_select_a_time_range(server: InProcessApp) -> None:
    toggle_many(server, 9, clients=1)
    with server.client() as http:
        rows = all_history(http)
        middle = rows[len(rows) // 2]
        since = page(http, since=middle["at"], limit=1000)["items"]
        until = page(http, until=middle["at"], limit=1000)["items"]
        assert {r["seq"] for r in since} | {r["seq"] for r in until} == {r["seq"] for r in rows}
        assert all(r["at"] >= middle["at"] for r in since)
        assert all(r["at"] < middle["at"] for r in until)
        # the same instant written with an offset selects the same rows
        moment = datetime.fromisoformat(middle["at"].replace("Z", "+00:00"))
        shifted = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
        assert page(http, since=shifted, limit=1000)["items"] == since
        start, end = rows[2]["at"], rows[8]["at"]
        window = page(http, since=start, until=end, limit=1000)["items"]
        expected = [r["seq"] for r in rows if start <= r["at"] < end]
        assert [r["seq"] for r in window] == expected[::-1] and len(expected) >= 3
        assert page(http, since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == {
            "items": [], "next": None}
        # An empty or reversed range selects nothing (the document cannot forbid it).
        for first, last in ((end, end), (end, start)):
            assert page(http, since=first, until=last) == {"items": [], "next": None}
        assert_gapless(rows)


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=ten", "limit=-1", "limit=1&limit=2",
    "since=yesterday", "since=2026-01-01T00:00:00", "until=2026-01-01",
    "cursor=abc", "cursor=0", "cursor=99999999999999999999999",
    "pin=", "pins=18", "order=asc",
])
def test_bad_parameters_are_422_problems(shared_server: InProcessApp, query: str) -> None:
    with shared_server.client() as http:
        response = http.get(f"/api/v1/history?{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["detail"]


@pytest.mark.parametrize("pin", ["4", "gpio4", "nope", "99"])
def test_unknown_pins_are_404(shared_server: InProcessApp, pin: str) -> None:
    with shared_server.client() as http:
        response = http.get("/api/v1/history", params={"pin": ["18", pin]})
    assert response.status_code == 404
    assert response.json()["detail"] == f"no configured pin '{pin}'"


def test_history_is_read_only_and_documented(shared_server: InProcessApp) -> None:
    with shared_server.client() as http:
        assert http.post("/api/v1/history").status_code == 405
        assert http.delete("/api/v1/history").status_code == 405
        spec = http.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/history"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "pin", "since", "until", "limit", "cursor"}
    assert set(operation["responses"]) >= {"200", "404", "422"}


# -- the page ----------------------------------------------------------------------------------


def row_html(html: str, bcm: int) -> str:
    match = re.search(rf'<tr id="pin-{bcm}".*?</tr>', html, re.S)
    assert match is not None
    return match.group(0)


def test_page_shows_the_last_change_and_a_timeline_without_script(server: InProcessApp) -> None:
    with server.client(token=server.create_token("phone", "control")) as http:
        http.post("/api/v1/pins/18/on")
    with server.client() as http:
        html = http.get("/").text
    row = row_html(html, 18)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", row))
    assert re.search(r"On since \d\d:\d\d, by phone", text), text
    assert '<svg class="timeline"' in row and 'class="timeline-on"' in row
    assert "<title>GPIO 18: 2 changes in the last 24 hours" in row
    other = row_html(html, 24)
    assert 'class="timeline-on"' not in other  # never on: nothing drawn as on
    other_text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", other))
    assert re.search(r"Off since \d\d:\d\d, by system \(startup\)", other_text), other_text
    # Works without JavaScript: no inline script, only script files (the CSP forbids inline).
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag


def test_page_stays_bounded_when_a_pin_is_busy(server: InProcessApp) -> None:
    toggle_many(server, 300, pins=(24,), clients=8)
    with server.client() as http:
        html = http.get("/").text
        assert http.get("/").text.count("<rect") == html.count("<rect")  # cached, same
    busy = row_html(html, 24)
    # More changes than one row draws: the oldest part is shown as unknown, not guessed,
    # and the number of shapes stays bounded.
    assert 'class="timeline-unknown"' in busy
    assert busy.count("<rect") <= 2 + 240
    # A quiet pin: its background, the stretch before its first record, its one state.
    assert row_html(html, 18).count("<rect") <= 3
