"""The event stream: ``GET /api/v1/events`` as Server-Sent Events.

A client gets one ``snapshot`` event (every pin, as ``GET /api/v1/pins`` reports them), then
one ``change`` event per committed change, in sequence order, each with ``id: <seq>``. A
client that reconnects with ``Last-Event-ID`` (EventSource does this by itself) gets the
changes it missed, or a fresh snapshot when the hub no longer holds them.

Two more sources ride along, for a principal that sees every pin (a guest limited to some
pins gets neither): ``reading`` events from the sampler and the automation's notices
(``rule_stopped``, ``rule_resumed``). Neither has an ``id``: only the changes have a sequence
to resume from. Both describe a state the server still holds, so instead of a replay each
opening carries that state: the latest reading per sensor, and a ``rule_stopped`` per rule
stopped now (with the ``at`` it stopped, so a client tells a repeat from a new stop).

Why the response is hand-written rather than a plain streaming response: a stream has to
end for four different reasons and each needs noticing even while nothing is being sent:

* the client went away (uvicorn's ``send`` then silently does nothing, so the request's
  ``receive`` is watched for ``http.disconnect``);
* the server is stopping (uvicorn waits for open connections before the lifespan ends, so
  the stream watches ``app.state.shutdown``, which the runtime sets on SIGTERM);
* the client fell too far behind and the hub dropped it (it may be stuck in ``send``
  because it stopped reading: the writer is cancelled so the connection is released, and
  a client that is still alive reconnects and resyncs);
* nothing happened for a while: a keep-alive comment keeps proxies and NAT from closing
  an idle connection.

Every path ends in ``finally: sub.close()``, so no subscriber outlives its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pinpanel.automation.notices import Notice, NoticeSubscription
from pinpanel.changes import Change, format_time
from pinpanel.events import EventHub, SubscriberDropped, Subscription
from pinpanel.sensors.model import Sample
from pinpanel.web.context import board_of, visible_pins
from pinpanel.web.openapi import problem
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

log = logging.getLogger(__name__)

#: Seconds of silence before a keep-alive comment (SSE clients and proxies time out ~30-60 s).
KEEPALIVE_S = 15.0
#: Reconnect delay suggested to EventSource, in milliseconds.
RETRY_MS = 2000
#: The most a final frame may take to go out before the connection is simply released.
CLOSE_GRACE_S = 1.0

KEEPALIVE_FRAME = b": keep-alive\n\n"


def _dumps(data: Any) -> str:
    # One line: json.dumps escapes newlines, so a value is always a single ``data:`` field.
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE event as bytes: ``event:``, optional ``id:``, one ``data:`` line, blank line."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {_dumps(data)}\n\n".encode()


class FrameCache:
    """Each change encoded once, however many streams send it.

    The hub hands the same :class:`Change` object to every subscriber, so with 100 open
    streams this saves 99 JSON encodings per change (milliseconds on a Pi Zero). Keyed by
    ``seq`` and checked by identity, so a different change with a reused number (another
    board in the same process, in tests) is never served the wrong bytes.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._frames: dict[int, tuple[Change, bytes]] = {}

    def __call__(self, changes: Iterable[Change]) -> bytes:
        return b"".join(self._one(c) for c in changes)

    def _one(self, change: Change) -> bytes:
        hit = self._frames.get(change.seq)
        if hit is not None and hit[0] is change:
            return hit[1]
        data = frame("change", change.as_json(), change.seq)
        self._frames[change.seq] = (change, data)
        if len(self._frames) > self._size:
            del self._frames[next(iter(self._frames))]  # the oldest entry
        return data


class KeepAlive:
    """One timer for the keep-alive comments of every open stream.

    Why not a timeout per stream: with 1,000 open streams, 1,000 timers re-armed on every
    change, and as many woken each time they expire, are work the loop does in the middle
    of a fan-out. Here each stream only notes when it last sent; one timer, running only
    while a stream is open, ticks every half interval and pokes the streams that have been
    quiet since, so none is silent for longer than the interval.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._last: dict[Subscription, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        self._last[sub] = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self.every / 2, self._tick)

    def sent(self, sub: Subscription) -> None:
        """The stream just sent something: its silence starts now."""
        self._last[sub] = asyncio.get_running_loop().time()

    def due(self, sub: Subscription) -> bool:
        """Whether the stream has been quiet long enough that a keep-alive is due."""
        last = self._last.get(sub)
        return last is None or asyncio.get_running_loop().time() - last >= self.every / 2

    def remove(self, sub: Subscription) -> None:
        self._last.pop(sub, None)
        if not self._last and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self.every / 2
        for sub, last in self._last.items():
            if last <= quiet:
                sub.poke()
        self._timer = loop.call_later(self.every / 2, self._tick) if self._last else None


class EncodedOnce:
    """A feed's items encoded once, however many streams send them.

    The sampler and the automation hand the same object to every stream, as the hub does
    a change; keyed by identity (the cache holds the item, so its id is not reused while
    cached). Without it, 10 sensors at 1 Hz on 1,000 streams were 10,000 JSON encodings a
    second, and a toggle's fan-out queued behind them.
    """

    def __init__(self, encode: Callable[[Any], bytes], size: int = 256) -> None:
        self._encode = encode
        self._size = size
        self._frames: dict[int, tuple[Any, bytes]] = {}

    def __call__(self, item: Any) -> bytes:
        hit = self._frames.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        data = self._encode(item)
        self._frames[id(item)] = (item, data)
        if len(self._frames) > self._size:
            del self._frames[next(iter(self._frames))]  # the oldest entry
        return data


def reading_frame(sample: Sample) -> bytes:
    """One ``reading`` event (no ``id``: readings are not in the changes' sequence)."""
    return frame("reading", sample.as_json())


def notice_frame(notice: Notice) -> bytes:
    """One automation event (``rule_stopped``, ``rule_resumed``; no ``id``, as readings)."""
    return frame(notice.event, notice.data)


class Source(Protocol):
    """A subscription besides the changes' (readings, notices).

    The stream sets ``notify`` to its change subscription's :meth:`~Subscription.poke`,
    so one wake-up serves every source, then takes what is queued without waiting.
    """

    dropped: bool
    closed: bool
    notify: Callable[[], None] | None

    def take(self) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Feed:
    """A source and how to encode one of its items as an SSE event."""

    source: Source
    encode: Callable[[Any], bytes]


def change_frames(changes: Iterable[Change]) -> bytes:
    """Change events without the shared cache (for one-off use)."""
    return b"".join(frame("change", c.as_json(), c.seq) for c in changes)


def parse_last_event_id(request: Request) -> int | None:
    """The sequence number a reconnecting client last saw, if it sent a usable one.

    The ``Last-Event-ID`` header comes from EventSource itself and is only ever a number
    this server sent; anything else is ignored (a snapshot is always a correct answer, and
    a 400 would make EventSource give up for good). The ``last_event_id`` query parameter
    is for clients that cannot set headers and is typed by people: a bad one is a 400.
    """
    header = request.headers.get("last-event-id", "").strip()
    if header.isdecimal() and header.isascii():
        return int(header)
    query = request.query_params.get("last_event_id")
    if query is None:
        return None
    if not (query.isdecimal() and query.isascii()):
        raise Problem(400, f"last_event_id must be a sequence number, got {query!r}")
    return int(query)


class EventStream(Response):
    """A ``text/event-stream`` response over the hub, for one client."""

    media_type = "text/event-stream"

    def __init__(self, request: Request, last_event_id: int | None) -> None:
        self.status_code = 200
        self.background = None
        self._request = request
        self._last_event_id = last_event_id
        #: A guest's pins (None: every pin); a limited principal gets no sensor readings
        #: and no automation notices (a rule may touch pins it cannot see).
        self._shown = visible_pins(request)
        state = request.app.state
        self._keepalive: float = getattr(state, "sse_keepalive", KEEPALIVE_S)
        self._shutdown: asyncio.Event | None = getattr(state, "shutdown", None)
        if getattr(state, "sse_frames", None) is None:
            state.sse_frames = FrameCache()
        self._frames: FrameCache = state.sse_frames
        if getattr(state, "sse_feed_frames", None) is None:
            state.sse_feed_frames = (EncodedOnce(reading_frame), EncodedOnce(notice_frame))
        self._feed_frames: tuple[EncodedOnce, EncodedOnce] = state.sse_feed_frames
        ticker = getattr(state, "sse_ticker", None)
        if ticker is None or ticker.every != self._keepalive:
            ticker = state.sse_ticker = KeepAlive(self._keepalive)
        self._ticker: KeepAlive = ticker
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def opening(self, hub: EventHub) -> bytes:
        """The first bytes: the retry hint, then the missed changes or a snapshot."""
        retry = f"retry: {RETRY_MS}\n".encode()
        seq = self._last_event_id
        # An id above last_seq is from another server or an older database: resync.
        if seq is not None and seq <= hub.last_seq:
            missed = hub.since(seq)
            if missed is not None:
                return retry + b"\n" + self._frames(self._only_shown(missed))
        board = board_of(self._request)
        # "at" is the server's now on the board's clock, so a client can tell how long a
        # pending pulse_until has left without trusting its own clock.
        now = datetime.fromtimestamp(board.clock.time(), UTC)
        snapshot = {"seq": hub.last_seq,
                    "at": format_time(now),
                    "pins": [view.as_json() for view in board.views()
                             if self._shown is None or view.pin in self._shown]}
        return retry + frame("snapshot", snapshot, hub.last_seq)

    def _only_shown(self, changes: Iterable[Change]) -> list[Change]:
        """The changes of the pins this client may see (all of them for most)."""
        shown = self._shown
        return list(changes) if shown is None else [c for c in changes if c.pin.pin in shown]

    def latest_readings(self) -> bytes:
        """A ``reading`` event per sensor with its latest sample (the readings' snapshot)."""
        sampler = getattr(self._request.app.state, "sensors", None)
        if sampler is None or self._shown is not None:
            return b""
        return b"".join(reading_frame(s.latest) for s in sampler.states.values()
                        if s.latest is not None)

    def _notices(self) -> tuple[NoticeSubscription | None, bytes]:
        """The automation notices' subscription and opening (rules stopped now)."""
        book = getattr(self._request.app.state, "rules", None)
        if book is None or self._shown is not None:
            return None, b""
        engine = book.engine
        return engine.notices.subscribe(), b"".join(
            notice_frame(n) for n in engine.stopped_notices())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = board_of(self._request).hub
        start = {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}
        if scope.get("method") == "HEAD":
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        # Subscribe and build the opening in one synchronous step: the hub publishes on
        # this loop, so no change can fall between the snapshot and the subscription.
        sub = hub.subscribe()
        sampler = getattr(self._request.app.state, "sensors", None)
        readings = sampler.subscribe() if sampler is not None and self._shown is None \
            else None
        notices, stopped = self._notices()
        opening = self.opening(hub) + self.latest_readings() + stopped
        feeds: list[Feed] = []
        if readings is not None:
            feeds.append(Feed(readings, self._feed_frames[0]))
        if notices is not None:
            feeds.append(Feed(notices, self._feed_frames[1]))
        writer: asyncio.Task[str] | None = None
        watcher: asyncio.Task[str] | None = None
        try:
            await send(start)
            writer = asyncio.create_task(self._write(send, sub, opening, feeds))
            watcher = asyncio.create_task(self._watch(receive, sub))
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            reason = self._reason(writer, watcher)
            for task in (writer, watcher):
                task.cancel()
            await asyncio.gather(writer, watcher, return_exceptions=True)
            if reason == "dropped":
                log.warning("event stream client %s fell behind and was dropped; it must "
                            "resync", self._request.client.host if self._request.client else "?")
            if reason != "disconnect":
                # End the response properly so the client reconnects (and resyncs). A
                # client that is not reading cannot take even that: after a short grace
                # the handler returns and uvicorn closes the connection.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_GRACE_S):
                        await send({"type": "http.response.body", "body": b"",
                                    "more_body": False})
        finally:
            sub.close()
            if readings is not None:
                readings.close()
            if notices is not None:
                notices.close()
            for leftover in (writer, watcher):
                if leftover is not None and not leftover.done():
                    leftover.cancel()

    @staticmethod
    def _reason(writer: asyncio.Task[str], watcher: asyncio.Task[str]) -> str:
        if not writer.done():
            return watcher.result()
        error = writer.exception()
        if isinstance(error, OSError):
            return "disconnect"  # servers on ASGI spec 2.4 raise OSError from send()
        return writer.result()

    async def _write(self, send: Send, sub: Subscription, opening: bytes,
                     feeds: Sequence[Feed] = ()) -> str:
        """Send the opening, then the changes and the feeds' items, and keep-alives.

        One wait per wake-up, on the change subscription: the feeds ring it when they have
        something (``notify``), and the app's one keep-alive timer pokes it when the stream
        has been quiet. No timer or task of its own per change: with 1,000 streams, what
        one change costs each of them is what the last one waits.
        """
        await send({"type": "http.response.body", "body": opening, "more_body": True})
        ticker = self._ticker
        ticker.add(sub)
        for feed in feeds:
            feed.source.notify = sub.poke
        if feeds:
            sub.poke()  # what a feed queued before it had the bell (during the opening's send)
        try:
            while True:
                try:
                    batch = await sub.next_batch()
                except SubscriberDropped:
                    return "dropped"
                if not batch and sub.closed:
                    return "closed"
                body = self._frames(self._only_shown(batch)) if batch else b""
                for feed in feeds:  # never for a limited principal
                    if feed.source.closed:
                        return "dropped" if feed.source.dropped else "closed"
                    got = feed.source.take()
                    if got:
                        body += b"".join(feed.encode(item) for item in got)
                if not body:
                    if batch or not ticker.due(sub):
                        continue  # changes this client may not see, or news already sent
                    body = KEEPALIVE_FRAME
                await send({"type": "http.response.body", "body": body, "more_body": True})
                ticker.sent(sub)
        finally:
            ticker.remove(sub)
            for feed in feeds:
                feed.source.notify = None

    async def _watch(self, receive: Receive, sub: Subscription) -> str:
        """Why the stream must end: ``disconnect``, ``shutdown`` or ``dropped``.

        The hub's drop is waited on like the others, not polled for: a writer stuck in
        ``send`` (a client that stopped reading) is released as soon as it happens.
        """

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        dropped = asyncio.create_task(sub.wait_dropped())
        waits: set[asyncio.Task[Any]] = {asyncio.create_task(disconnected()), dropped}
        stopping = None
        if self._shutdown is not None:
            stopping = asyncio.create_task(self._shutdown.wait())
            waits.add(stopping)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if stopping is not None and stopping in done:
                return "shutdown"
            if dropped in done:
                return "dropped"
            return "disconnect"
        finally:
            for task in waits:
                task.cancel()


async def events(request: Request) -> Response:
    """``GET /api/v1/events``: the live event stream (needs the ``read`` scope)."""
    return EventStream(request, parse_last_event_id(request))


#: One event of the stream (OpenAPI 3.1: a text/event-stream schema describes each event).
EVENT = {"type": "object", "properties": {
    "event": {"type": "string",
              "enum": ["snapshot", "change", "reading", "rule_stopped", "rule_resumed"]},
    "id": {"type": "string", "pattern": "^[0-9]+$",
           "description": "The seq (snapshot and change only)"},
    "data": {"type": "string", "contentMediaType": "application/json",
             "description": "One line of JSON: the snapshot, change, reading or notice"},
    "retry": {"type": "integer", "description": "Reconnect delay in milliseconds"}}}
OPENAPI = {
    "summary": "Live events (Server-Sent Events)", "tags": ["pins"],
    "description": (
        "One `snapshot` event ({seq, at, pins: [Pin]}), then one `change` event per "
        "committed change ({seq, pin: Pin, old, actor, cause, at}) with `id: seq`, in "
        "sequence order. Sensors: one `reading` event per sensor with its latest sample "
        "after the snapshot, then one per stored reading ({sensor, at, values, error, "
        "detail}; no id). Rules: a `rule_stopped` event when the loop protection stops a "
        "rule ({rule, name, reason: depth or rate, detail, at}; no id), one per rule still "
        "stopped after the snapshot, and `rule_resumed` when it is enabled again ({rule, "
        "name, enabled, at}; enabled false when it was disabled or removed instead). A guest "
        "token limited to some pins gets neither readings nor rule events. A keep-alive "
        "comment at least every 15 s. Reconnect with the Last-Event-ID header (or "
        "?last_event_id=) to get the changes missed, or a fresh snapshot when they are no "
        "longer held; readings and rule events are not replayed (the opening says how they "
        "stand now). A client that falls too far behind is disconnected and must "
        "reconnect."),
    "parameters": [
        {"name": "Last-Event-ID", "in": "header", "required": False,
         "description": "The last id received; ignored unless a number",
         "schema": {"type": "string"}},
        {"name": "last_event_id", "in": "query", "required": False,
         "description": "Same as Last-Event-ID, for clients that cannot set headers",
         "schema": {"type": "integer", "minimum": 0}},
    ],
    "responses": {
        "200": {"description": "The event stream",
                "content": {"text/event-stream": {"schema": EVENT}}},
        "400": problem("last_event_id is not a number"),
    }}


def routes() -> list[ApiRoute]:
    return [ApiRoute("/api/v1/events", events, methods=["GET"], name="events", policy="read",
                      pin_scoped=True,
                     openapi=OPENAPI)]
