"""The event stream (web/stream.py) in one process: frames, resume, keep-alive, ends, drops.

The stream is driven as an ASGI app with a hand-made ``receive``/``send``, so each way a
stream can end (disconnect, shutdown, falling behind while stuck in ``send``) is exercised
exactly, with a short keep-alive interval and no real sockets. tests/e2e/test_stream.py
does the same against a real server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from pinpanel.board import Board
from pinpanel.changes import Actor, Change, Committed, PinView
from pinpanel.events import EventHub
from pinpanel.hardware import Hardware
from pinpanel.store import Store
from pinpanel.web import stream
from pinpanel.web.problems import EXCEPTION_HANDLERS
from tests.support import FakeClock
from tests.unit.conftest import config_of

USER = Actor("tester", "api", "127.0.0.1")
CONFIG = """
[[pins]]
pin = 20
[[pins]]
pin = 21
[[pins]]
pin = 5
mode = "input"
pull = "up"
"""


@contextlib.asynccontextmanager
async def board_with(tmp_path: Path, hub: EventHub, clock: FakeClock | None = None,
                     ) -> AsyncIterator[Board]:
    store = Store.open(tmp_path)
    board = Board(config_of(CONFIG), Hardware.open("simulated"), store, hub,
                  clock=clock or FakeClock())
    await board.start()
    try:
        yield board
    finally:
        await board.close("keep")
        store.close()


def stream_app(board: Board, keepalive: float = 15.0) -> Starlette:
    app = Starlette(routes=stream.routes(), exception_handlers=EXCEPTION_HANDLERS)  # type: ignore[arg-type]
    app.state.board = board
    app.state.shutdown = asyncio.Event()
    app.state.sse_keepalive = keepalive
    return app


class Client:
    """One request to the app, with the body it has been sent so far, parsed as SSE."""

    def __init__(self, app: Starlette, headers: dict[str, str] | None = None,
                 query: str = "", method: str = "GET", stuck: asyncio.Event | None = None,
                 release: asyncio.Event | None = None) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self.messages: list[dict[str, Any]] = []
        # Once ``stuck`` is set, send() blocks (until ``release``, if given), as it does
        # for a client that stops reading.
        self.stuck = stuck
        self.release = release or asyncio.Event()
        self.scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": method, "scheme": "http",
            "path": "/api/v1/events", "raw_path": b"/api/v1/events",
            "query_string": query.encode(), "root_path": "", "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80), "state": {},
            "headers": [(b"host", b"127.0.0.1"),
                        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
        }
        self.task = asyncio.get_running_loop().create_task(
            app(self.scope, self.inbox.get, self.send))

    async def send(self, message: dict[str, Any]) -> None:
        if self.stuck is not None and self.stuck.is_set():
            await self.release.wait()
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"]) if self.messages else 0

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def complete(self) -> bool:
        return any(m["type"] == "http.response.body" and not m.get("more_body", False)
                   for m in self.messages)

    def events(self) -> list[dict[str, Any]]:
        """Each dispatched event as {event, id, data}, plus comments as {comment}."""
        out: list[dict[str, Any]] = []
        for block in self.body.decode().split("\n\n")[:-1]:
            fields: dict[str, Any] = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    out.append({"comment": line[1:].strip()})
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if "data" in fields:
                fields["data"] = json.loads(fields["data"])
                out.append(fields)
        return out

    def disconnect(self) -> None:
        self.inbox.put_nowait({"type": "http.disconnect"})

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await asyncio.sleep(0.005)

    async def finished(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            await self.task


def changes(client: Client) -> list[dict[str, Any]]:
    return [e for e in client.events() if e.get("event") == "change"]


# -- changes for the frame cache ----------------------------------------------------------


def change(seq: int, state: bool = True) -> Change:
    view = PinView(18, "gpio18", "GPIO 18", "output", state, False, seq, "t")
    return Change(Committed(18, "gpio18", not state, state, USER, "t", seq), view)


def test_frames_are_one_event_each_with_one_data_line() -> None:
    raw = stream.frame("change", {"text": "two\nlines"}, 7).decode()
    assert raw == 'event: change\nid: 7\ndata: {"text":"two\\nlines"}\n\n'


# -- the stream --------------------------------------------------------------------------------


async def test_snapshot_then_changes_in_sequence_order(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        client = Client(stream_app(board))
        await client.wait_for(lambda c: c.events())
        assert client.status == 200
        headers = dict(client.messages[0]["headers"])
        assert headers[b"content-type"].startswith(b"text/event-stream")
        assert headers[b"cache-control"] == b"no-store"
        assert client.body.startswith(b"retry: ")
        snapshot = client.events()[0]
        assert snapshot["event"] == "snapshot"
        assert int(snapshot["id"]) == snapshot["data"]["seq"] == board.hub.last_seq
        assert snapshot["data"]["pins"] == [v.as_json() for v in board.views()]
        await asyncio.gather(*(board.command(pin, "toggle", USER) for pin in (20, 21) * 5))
        await board.simulate(5, False)
        await client.wait_for(lambda c: len(changes(c)) == 11)
        seqs = [int(e["id"]) for e in changes(client)]
        assert seqs == list(range(snapshot["data"]["seq"] + 1, board.hub.last_seq + 1))
        assert [e["data"]["seq"] for e in changes(client)] == seqs
        last = changes(client)[-1]["data"]
        assert (last["pin"]["pin"], last["pin"]["state"], last["cause"]) == (5, False, "input")
        assert set(last) == {"seq", "pin", "old", "actor", "cause", "at"}
        client.disconnect()
        await client.finished()
        assert board.hub.subscriber_count == 0


async def test_last_event_id_replays_the_missed_changes(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        seen = board.hub.last_seq
        for _ in range(3):
            await board.command(20, "toggle", USER)
        client = Client(stream_app(board), headers={"Last-Event-ID": str(seen)})
        await client.wait_for(lambda c: len(changes(c)) == 3)
        assert [e.get("event") for e in client.events()] == ["change"] * 3
        assert [int(e["id"]) for e in changes(client)] == [seen + 1, seen + 2, seen + 3]
        await board.command(21, "on", USER)  # and live changes follow the replay
        await client.wait_for(lambda c: len(changes(c)) == 4)
        assert int(changes(client)[-1]["id"]) == seen + 4
        client.disconnect()
        await client.finished()


async def test_a_client_up_to_date_gets_no_snapshot_and_nothing_repeated(
        tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        client = Client(stream_app(board), query=f"last_event_id={board.hub.last_seq}")
        await client.wait_for(lambda c: c.body)
        assert client.body == b"retry: 2000\n\n" and client.events() == []
        client.disconnect()
        await client.finished()


async def test_too_old_unknown_or_garbled_ids_get_a_fresh_snapshot(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub(replay=2)) as board:
        for _ in range(4):
            await board.command(20, "toggle", USER)
        app = stream_app(board)
        for header in ("1", str(board.hub.last_seq + 100), "abc", "-3"):
            client = Client(app, headers={"Last-Event-ID": header})
            await client.wait_for(lambda c: c.events())
            first = client.events()[0]
            assert first["event"] == "snapshot", header
            assert first["data"]["seq"] == board.hub.last_seq
            client.disconnect()
            await client.finished()


async def test_a_bad_last_event_id_query_is_a_problem(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        client = Client(stream_app(board), query="last_event_id=yesterday")
        await client.finished()
        assert client.status == 400
        assert json.loads(client.body)["detail"].startswith("last_event_id must be")
        assert board.hub.subscriber_count == 0


async def test_keep_alive_comment_while_nothing_changes(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        client = Client(stream_app(board, keepalive=0.02))
        await client.wait_for(lambda c: sum("comment" in e for e in c.events()) >= 2)
        assert {"comment": "keep-alive"} in client.events()
        await board.command(20, "on", USER)  # the stream still carries changes after them
        await client.wait_for(lambda c: len(changes(c)) == 1)
        client.disconnect()
        await client.finished()
        assert board.hub.subscriber_count == 0


async def test_shutdown_ends_every_stream_with_a_complete_response(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        app = stream_app(board)
        clients = [Client(app) for _ in range(5)]
        for client in clients:
            await client.wait_for(lambda c: c.events())
        assert board.hub.subscriber_count == 5
        app.state.shutdown.set()
        for client in clients:
            await client.finished()
            assert client.complete
        assert board.hub.subscriber_count == 0


async def test_disconnects_free_every_subscriber(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        app = stream_app(board)
        for _ in range(200):
            client = Client(app)
            await client.wait_for(lambda c: c.events())
            client.disconnect()
            await client.finished()
        assert board.hub.subscriber_count == 0


async def test_a_client_behind_but_reading_is_ended_so_it_resyncs(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub(buffer=4)) as board:
        app = stream_app(board)
        slow, release = asyncio.Event(), asyncio.Event()
        lagging, steady = Client(app, stuck=slow, release=release), Client(app)
        for client in (lagging, steady):
            await client.wait_for(lambda c: c.events())
        slow.set()
        for n in range(6):  # the lagging client's send() is slow: 5 queue up behind it
            await board.command(20, "toggle", USER)
            await steady.wait_for(lambda c, n=n: len(changes(c)) == n + 1)
        assert board.hub.subscriber_count == 1
        # The drop released its writer at once, from inside the first change's send (the
        # hub says so; nothing polls): that change never went out. It reads again and its
        # response ends, so it reconnects and resyncs from its Last-Event-ID.
        release.set()
        await lagging.finished()
        assert lagging.complete
        assert changes(lagging) == []
        assert not steady.task.done()
        steady.disconnect()
        await steady.finished()
        assert board.hub.subscriber_count == 0


async def test_a_client_stuck_in_send_is_released_when_dropped(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub(buffer=4)) as board:
        app = stream_app(board, keepalive=0.05)
        stuck = asyncio.Event()
        dead, alive = Client(app, stuck=stuck), Client(app)
        for client in (dead, alive):
            await client.wait_for(lambda c: c.events())
        stuck.set()
        await board.command(20, "on", USER)  # the dead client's writer now hangs in send()
        await alive.wait_for(lambda c: len(changes(c)) == 1)
        for _ in range(6):
            await board.command(20, "toggle", USER)
        await dead.finished()  # released, though its send() never returned
        assert board.hub.subscriber_count == 1
        await alive.wait_for(lambda c: len(changes(c)) == 7)
        seqs = [int(e["id"]) for e in changes(alive)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 7
        alive.disconnect()
        await alive.finished()


async def test_head_answers_headers_only(tmp_path: Path) -> None:
    async with board_with(tmp_path, EventHub()) as board:
        client = Client(stream_app(board), method="HEAD")
        await client.finished()
        assert client.status == 200 and client.body == b""
        assert board.hub.subscriber_count == 0


async def test_a_pending_pulse_shows_in_the_snapshot_with_the_servers_time(
        tmp_path: Path) -> None:
    clock = FakeClock()
    async with board_with(tmp_path, EventHub(), clock) as board:
        await board.pulse(20, 1500, USER)
        client = Client(stream_app(board))
        await client.wait_for(lambda c: c.events())
        snapshot = client.events()[0]["data"]
        pin = next(p for p in snapshot["pins"] if p["pin"] == 20)
        assert pin["state"] is True and pin["pulse_until"] > snapshot["at"]
        clock.advance(1.5)
        await client.wait_for(lambda c: len(changes(c)) == 1)
        off = changes(client)[0]["data"]
        assert (off["cause"], off["pin"]["state"]) == ("pulse", False)
        assert "pulse_until" not in off["pin"]
        client.disconnect()
        await client.finished()


def test_each_change_is_encoded_once_and_never_confused_with_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = stream.FrameCache(size=2)
    first, again, other = change(1), change(1, False), change(2)
    encoded = cache([first])
    assert encoded == stream.change_frames([first])
    calls: list[str] = []
    real = stream.frame
    monkeypatch.setattr(stream, "frame", lambda *a: calls.append(a[0]) or real(*a))
    assert cache([first, first]) == encoded * 2 and calls == []  # not encoded again
    assert cache([again]) == stream.change_frames([again])  # same seq, another change
    cache([other])
    cache([change(3)])
    assert cache([first]) == stream.change_frames([first])  # evicted, encoded afresh


class QueuedFeed:
    """A source that already holds an item when the stream's writer starts."""

    dropped = False
    closed = False

    def __init__(self) -> None:
        self.items = [b"event: reading\ndata: {}\n\n"]
        self.notify: Any = None

    def take(self) -> list[bytes]:
        items, self.items = self.items, []
        return items


async def test_what_a_feed_queued_before_the_writer_started_goes_out_at_once() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    writer = object.__new__(stream.EventStream)  # only the writer's own state is needed
    writer._ticker, writer._frames = stream.KeepAlive(15.0), stream.FrameCache()
    writer._shown = None
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    feed = QueuedFeed()
    task = asyncio.create_task(writer._write(send, sub, b"opening", [stream.Feed(feed, bytes)]))
    async with asyncio.timeout(5):  # no change, no keep-alive: the item alone must wake it
        while len(sent) < 2:
            await asyncio.sleep(0.005)
    assert [m["body"] for m in sent] == [b"opening", b"event: reading\ndata: {}\n\n"]
    assert feed.notify is not None  # the feed rings the stream's one wake-up from now on
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert feed.notify is None
    sub.close()


def test_a_feed_item_is_encoded_once_for_every_stream_and_never_confused() -> None:
    calls: list[object] = []

    def encode(item: object) -> bytes:
        calls.append(item)
        return repr(item).encode()

    once = stream.EncodedOnce(encode, size=2)
    first, second = {"v": 1}, {"v": 1}  # equal, but two publishes
    assert [once(first) for _ in range(1000)] == [b"{'v': 1}"] * 1000
    assert once(second) == b"{'v': 1}"
    assert calls == [first, second] and calls[0] is first and calls[1] is second
    once({"v": 3})  # the oldest entry goes; it is encoded again if it ever comes back
    once(first)
    assert len(calls) == 4
