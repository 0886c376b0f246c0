"""The loop protection on the event stream, on the real app in process (make_app).

Two rules that switch what the other watches are stopped by the engine; a stream open at
the time gets exactly one ``rule_stopped``, a stream opened later gets the rule's state in
its opening (the same ``at``), enabling the rule again sends ``rule_resumed``, and a token
limited to pins gets none of it. The in-process client buffers a whole response, so each
stream here is one ASGI request on the app's own loop with a hand-made receive and send.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from pinpanel import auth
from pinpanel.automation.rules import MAX_DEPTH
from tests.inprocess import AppFactory, InProcessApp

CONFIG = """
[gpio]
backend = "simulated"

[[pins]]
pin = 17
id = "ping"

[[pins]]
pin = 27
id = "pong"

[[pins]]
pin = 22
id = "other"

# ping on -> pong on, pong on -> ping off, ping off -> pong off, pong off -> ping on ...
[[rules]]
id = "a"
when = { pin = "ping", to = "on" }
then = [{ pins = ["pong"], action = "on" }]
otherwise = [{ pins = ["pong"], action = "off" }]

[[rules]]
id = "b"
when = { pin = "pong", to = "on" }
then = [{ pins = ["ping"], action = "off" }]
otherwise = [{ pins = ["ping"], action = "on" }]
"""


class Stream:
    """``GET /api/v1/events`` as one ASGI request on the app's loop, its body kept."""

    def __init__(self, server: InProcessApp, token: str | None = None) -> None:
        assert server.portal is not None
        self.portal = server.portal
        self.body = b""
        self.done = False
        headers = [(b"host", b"127.0.0.1"),
                   (b"authorization", f"Bearer {token or server.token}".encode())]
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": "/api/v1/events", "raw_path": b"/api/v1/events", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 50000),
                 "server": ("127.0.0.1", 80), "headers": headers}

        async def start() -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]:
            inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
            task = asyncio.create_task(server.app(scope, inbox.get, self._send))
            return inbox, task

        self.inbox, self.task = self.portal.call(start)

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            self.done = not message.get("more_body", False)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Each event as {event, id, data}; keep-alive comments left out."""
        found = []
        for block in self.portal.call(lambda: self.body).decode().split("\n\n")[:-1]:
            fields = dict(line.split(": ", 1) for line in block.split("\n")
                          if line and not line.startswith(":") and ": " in line)
            if "data" in fields:
                fields["data"] = json.loads(fields["data"])
                found.append(fields)
        return [e for e in found if name is None or e["event"] == name]

    def wait_for(self, what: str, predicate: Callable[[Stream], bool]) -> None:
        deadline = time.monotonic() + 30
        while not predicate(self):
            assert not self.done, f"the stream ended while waiting for {what}"
            assert time.monotonic() < deadline, f"no {what}; got {self.events()[-3:]}"
            time.sleep(0.01)

    def wait_seq(self, seq: int) -> None:
        self.wait_for(f"seq {seq}", lambda s: any(
            int(e.get("id", 0)) >= seq for e in s.events("change")))

    def close(self) -> None:
        async def end() -> None:
            self.inbox.put_nowait({"type": "http.disconnect"})
            await self.task

        self.portal.call(end)


def wait_stopped(http: Any) -> str:
    deadline = time.monotonic() + 30
    while True:
        rules = {r["id"]: r for r in http.get("/api/v1/rules").json()["rules"]}
        stopped = [rid for rid, r in rules.items() if r["stopped"]]
        if stopped:
            assert len(stopped) == 1, rules
            return stopped[0]
        assert time.monotonic() < deadline, f"the loop was not stopped: {rules}"
        time.sleep(0.02)


def test_a_looping_pair_of_rules_sends_one_rule_stopped(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    assert server.opened is not None and server.portal is not None
    limited = server.portal.call(lambda: auth.create_token(
        server.opened.store, "porch-guest", "control",  # type: ignore[union-attr]
        grants=frozenset({(17, "on"), (27, "on")})))
    server.portal.call(server.keyring.invalidate)  # type: ignore[union-attr]
    with server.client() as http:
        live = Stream(server)
        guest = Stream(server, limited)
        live.wait_for("snapshot", lambda s: bool(s.events("snapshot")))
        guest.wait_for("snapshot", lambda s: bool(s.events("snapshot")))
        assert live.events("rule_stopped") == []

        http.post("/api/v1/pins/ping/on").raise_for_status()
        stopped = wait_stopped(http)
        # A barrier: a change after the stop, on a pin no rule watches. Once it is on the
        # stream, so is everything the engine published before it.
        barrier = http.post("/api/v1/pins/other/on").json()["seq"]
        live.wait_seq(barrier)
        guest.wait_for("the pings", lambda s: bool(s.events("change")))

        notices = live.events("rule_stopped")
        assert len(notices) == 1, notices
        data = notices[0]["data"]
        assert "id" not in notices[0]  # only changes carry the resume point
        assert (data["rule"], data["name"], data["reason"]) == (stopped, stopped, "depth")
        assert str(MAX_DEPTH) in data["detail"] and data["at"].endswith("Z")
        assert data["detail"] == http.get(f"/api/v1/rules/{stopped}").json()["stopped"]
        assert guest.events("rule_stopped") == []  # a guest limited to pins: no rule events

        # A stream opened now hears the state in its opening: the same stop, the same at.
        later = Stream(server)
        later.wait_for("snapshot", lambda s: bool(s.events("snapshot")))
        assert [e["data"] for e in later.events("rule_stopped")] == [data]
        later.close()

        # Enabling it again lifts the stop, and the open stream is told.
        http.put(f"/api/v1/rules/{stopped}", json={"enabled": True}).raise_for_status()
        assert http.get(f"/api/v1/rules/{stopped}").json()["stopped"] is None
        live.wait_for("rule_resumed", lambda s: bool(s.events("rule_resumed")))
        resumed = live.events("rule_resumed")
        assert [(e["data"]["rule"], e["data"]["enabled"]) for e in resumed] == [(stopped, True)]
        assert len(live.events("rule_stopped")) == 1
        fresh = Stream(server)
        fresh.wait_for("snapshot", lambda s: bool(s.events("snapshot")))
        assert fresh.events("rule_stopped") == []
        for stream in (fresh, guest, live):
            stream.close()
        # Every stream let go of its subscriptions (the hub's and the notices').
        opened = server.opened
        assert server.portal.call(lambda: (opened.board.hub.subscriber_count,
                                           opened.rules.engine.notices.subscribers)) == (0, 0)  # type: ignore[union-attr]
