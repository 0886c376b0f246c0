"""Notifications end to end: a real server process, a local webhook receiver.

The receiver checks the HMAC signature, answers the first delivery with a 500 (the server
retries), and gets, after a restart, a notification that was queued before a kill -9.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support import ServerProcess, free_port

SECRET = "s3cret-for-tests"
#: A hang guard for waiting on deliveries, never a timing assertion.
DEADLINE_S = 30.0


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records deliveries and can fail on purpose."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.deliveries: list[tuple[dict[str, Any], bool]] = []  # (body, signature ok)
        self.fail_next = 0
        self.attempts = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body,
                                                hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(self.headers.get("X-Pinpanel-Signature", ""),
                                         expected)
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                    else:
                        receiver.deliveries.append((json.loads(body), ok))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"{len(self.deliveries)} deliveries, not {count}"
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(free_port()).start()
    yield made
    made.stop()


def config(port: int) -> str:
    return f"""
[gpio]
backend = "simulated"

[[pins]]
pin = 17
id = "porch"

[[notifiers]]
id = "hook"
url = "http://127.0.0.1:{port}/pinpanel"
secret = "{SECRET}"

[[rules]]
id = "porch-notice"
name = "Porch light"
when = {{ pin = "porch", to = "on" }}
then = [{{ notify = "hook", message = "The porch light is on" }}]
"""


def outbox_rows(server: ServerProcess) -> int:
    conn = sqlite3.connect(server.data_dir / "pinpanel.sqlite3")
    try:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        conn.close()


def switch(server: ServerProcess, action: str) -> None:
    with server.client() as http:
        assert http.post(f"/api/v1/pins/porch/{action}").status_code == 200


def test_signed_retried_and_kept_across_a_kill(make_server: Any, receiver: Receiver) -> None:
    server: ServerProcess = make_server(config(receiver.port))
    receiver.fail_next = 1
    switch(server, "on")
    receiver.wait_for(1)
    body, signed = receiver.deliveries[0]
    assert signed, "the HMAC-SHA256 signature did not match"
    assert receiver.attempts == 2  # a 500 first, then the retry
    assert body["rule"] == "porch-notice" and body["message"] == "The porch light is on"
    assert body["title"] == "Porch light" and body["at"].endswith("Z")
    assert "retrying" in server.log()
    # The receiver goes away; a notification is queued; the server dies with it queued.
    receiver.stop()
    switch(server, "off")
    switch(server, "on")
    deadline = time.monotonic() + DEADLINE_S
    while outbox_rows(server) < 1:
        assert time.monotonic() < deadline, "the notification was never queued"
        time.sleep(0.05)
    server.kill()
    assert outbox_rows(server) == 1
    receiver.start()
    server.start()
    receiver.wait_for(2)
    later, signed = receiver.deliveries[1]
    assert signed and later["message"] == "The porch light is on"
    deadline = time.monotonic() + DEADLINE_S
    while outbox_rows(server) > 0:  # a sent row leaves the outbox
        assert time.monotonic() < deadline
        time.sleep(0.05)
