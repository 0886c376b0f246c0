"""Event-stream delivery latency: from a toggle request to its ``change`` event at N clients.

Why in-process async httpx clients: the figure the project cares about is "how long after a
phone taps Toggle does every other open page see it", which is one server fanning one event out
to many open streams. N subscribers as tasks of one event loop is the cheapest way to hold N
streams open on a 2-core machine. Their cost is not zero: with 100 subscribers the harness
parses 100 copies of each event in turn, so the last of them is stamped later than the first.
The ceiling app serves the same stream shape, so its figure is the floor that harness and
stack impose, and pinpanel's excess over it is pinpanel's.

Each toggle is sent only after every subscriber has received the previous one (or a timeout
passed), so one toggle's fan-out never queues behind another's. The clock starts just before
the request is sent and stops when the chunk holding the event is read off the socket, before
any parsing.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load import Request
from bench.stats import percentile

CHANGE_MARKERS = (b"event: change", b"event:change")


@dataclass
class Tally:
    """Counts change events across all subscribers so only the last arrival wakes the sender."""

    seen: int = 0
    target: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, n: int) -> None:
        self.seen += n
        if self.seen >= self.target:
            self.done.set()


@dataclass
class Subscriber:
    """One open event stream and what arrived on it.

    During the measurement a subscriber only stamps and stores each read and counts the
    ``change`` markers in it; parsing waits until the toggles are done, so no subscriber's
    parsing delays another's read.
    """

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    snapshot: Any = None
    chunked: bool = False
    leftover: bytes = b""  # SSE text read through httpx before switching to the raw stream
    reads: list[tuple[float, bytes]] = field(default_factory=list)
    count: int = 0  # change markers seen so far
    error: str | None = None

    def changes(self) -> list[tuple[float, str | None, str]]:
        """Parse the stored reads: each change event with the stamp of the read completing it."""
        parser = EventParser(chunked=self.chunked)
        parser.text = self.leftover
        out = []
        for stamp, data in self.reads:
            for event, ident, text in parser.feed(data):
                if event == "change":
                    out.append((stamp, ident, text))
        return out


@dataclass
class StreamResult:
    """Latencies (seconds) of every (toggle, subscriber) delivery, plus what went wrong."""

    subscribers: int
    toggles: int
    latencies_s: list[float]
    missing: int  # deliveries that did not arrive within the timeout
    errors: list[str]
    seq_mismatches: int  # events whose seq differs from the toggle reply's seq
    sample_event: Any = None
    sample_snapshot: Any = None

    def to_json(self) -> dict[str, Any]:
        """Summary for ``--json`` (the raw latencies are large; keep percentiles)."""
        return {
            "subscribers": self.subscribers,
            "toggles": self.toggles,
            "deliveries": len(self.latencies_s),
            "missing": self.missing,
            "errors": self.errors,
            "seq_mismatches": self.seq_mismatches,
            "p50_ms": percentile(self.latencies_s, 0.50) * 1000 if self.latencies_s else None,
            "p99_ms": percentile(self.latencies_s, 0.99) * 1000 if self.latencies_s else None,
            "max_ms": max(self.latencies_s) * 1000 if self.latencies_s else None,
            "sample_event": self.sample_event,
            "sample_snapshot": self.sample_snapshot,
        }


def _parse_block(block: bytes) -> tuple[str, str | None, str]:
    """One SSE event block -> (event name, id, data); comments and retry lines ignored."""
    event, ident, data = "message", None, []
    for raw in block.split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            ident = value
        elif name == "data":
            data.append(value)
    return event, ident, "\n".join(data)


class EventParser:
    """Incremental SSE parser over raw body bytes, optionally HTTP/1.1 chunked-framed."""

    def __init__(self, chunked: bool) -> None:
        self.chunked = chunked
        self.raw = b""  # undecoded chunked framing
        self.left = 0  # bytes still due in the current chunk
        self.text = b""  # decoded SSE text not yet split into events

    def feed(self, data: bytes) -> list[tuple[str, str | None, str]]:
        """Add bytes; return every event block they completed."""
        if self.chunked:
            self.raw += data
            data = self._dechunk()
        self.text += data.replace(b"\r\n", b"\n")
        events = []
        while b"\n\n" in self.text:
            block, self.text = self.text.split(b"\n\n", 1)
            events.append(_parse_block(block))
        return events

    def _dechunk(self) -> bytes:
        out = b""
        while self.raw:
            if self.left:
                take = self.raw[: self.left]
                out += take
                self.raw = self.raw[len(take) :]
                self.left -= len(take)
                continue
            # Between chunks: the CRLF after the previous chunk's data (possibly already
            # consumed by h11 before the switch to the raw stream), then "<hex size>\r\n".
            self.raw = self.raw.lstrip(b"\r\n")
            line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                break
            self.left = int(line.split(b";")[0], 16)
            self.raw = rest
            if self.left == 0:
                self.raw = b""
                break
        return out


async def _subscribe(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], sub: Subscriber,
    tally: Tally,
) -> None:
    """Hold one stream open; stamp every read of it, count its change events.

    httpx opens the stream and reads up to the snapshot (h11 may already hold those body bytes
    from the read that brought the headers). After that the subscriber reads the connection's
    ``network_stream`` directly: going through h11 and httpcore for every chunk costs about
    0.1 ms of harness CPU per event per subscriber here, which at 100 subscribers would add
    more than 10 ms to the last one's latency and measure the harness, not the server.
    """
    try:
        async with client.stream("GET", path, headers=headers) as resp:
            if resp.status_code != 200:
                sub.error = f"status {resp.status_code}"
                return
            sub.chunked = resp.headers.get("transfer-encoding", "").lower() == "chunked"
            parser = EventParser(chunked=False)  # httpx removes the framing in aiter_raw
            body = resp.aiter_raw()  # kept referenced: closing it would close the stream
            while not sub.ready.is_set():
                chunk = await body.__anext__()
                for event, _ident, data in parser.feed(chunk):
                    if event == "snapshot":
                        sub.snapshot = _maybe_json(data)
                        sub.ready.set()
            sub.leftover = parser.text
            network = resp.extensions["network_stream"]
            reads = sub.reads
            while True:
                data = await network.read(65536)
                now = time.perf_counter()
                if not data:
                    return
                reads.append((now, data))
                n = data.count(CHANGE_MARKERS[0]) + data.count(CHANGE_MARKERS[1])
                if n:
                    sub.count += n
                    tally.add(n)
    except (httpx.HTTPError, OSError, StopAsyncIteration) as exc:
        sub.error = repr(exc)
    finally:
        sub.ready.set()


class RawToggler:
    """Sends the toggle over one kept-alive raw connection with pre-built request bytes.

    Why not httpx here too: on the bench machine an httpx request costs about 2 ms of harness
    CPU before its bytes reach the socket, and that would be charged to the server's delivery
    latency. With the bytes ready, the clock starts immediately before ``write``.
    """

    def __init__(self, host: str, port: int, request: Request, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        hdrs = {"Host": f"{host}:{port}", **request.headers, **headers}
        body = (request.body or "").encode()
        hdrs["Content-Length"] = str(len(body))
        head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()
        )
        self.payload = head.encode("latin-1") + b"\r\n" + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> tuple[float, int, str]:
        """Write the toggle; return (t0 just before the write, status, body)."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        t0 = time.perf_counter()
        self.writer.write(self.payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        if "content-length" in fields:
            body = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:  # no length: the server closes the connection after the body
            body = await self.reader.read()
        if fields.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
            self.close()
        return t0, status, body.decode("utf-8", "replace")

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        body = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return body
            body += chunk[:-2]

    def close(self) -> None:
        """Drop the connection (the next send reconnects)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


async def measure_async(
    base_url: str, toggle: Request, headers: dict[str, str], *, subscribers: int, toggles: int,
    events_path: str, timeout_s: float = 2.0, check_seq: bool = True,
) -> StreamResult:
    """Open ``subscribers`` streams, then send ``toggles`` toggles one after another.

    ``check_seq`` compares each event's seq with the toggle reply's; off for the ceiling,
    whose replies are replayed bytes.
    """
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(10.0, read=None)
    sub_headers = {**headers, "Accept": "text/event-stream"}
    errors: list[str] = []
    tally = Tally()
    rounds: list[tuple[float, list[int], int | None]] = []  # (t0, counts before, reply seq)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=timeout
    ) as stream_client:
        subs = [Subscriber() for _ in range(subscribers)]
        tasks = [
            asyncio.create_task(_subscribe(stream_client, events_path, sub_headers, s, tally))
            for s in subs
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 20)
            errors.extend(sorted({s.error for s in subs if s.error}))
            if errors:
                return StreamResult(subscribers, 0, [], 0, errors, 0)
            await asyncio.sleep(0.05)  # let the server finish registering the last stream
            url = httpx.URL(base_url)
            toggler = RawToggler(url.host, url.port or 80, toggle, headers)
            gc.disable()  # a harness GC pause would be charged to the server
            try:
                for _ in range(toggles):
                    before = [s.count for s in subs]
                    tally.target = tally.seen + len(subs)
                    tally.done.clear()
                    t0, status, text = await toggler.send()
                    if status != 200:
                        errors.append(f"toggle status {status}: {text[:100]}")
                        break
                    reply_seq = _seq_of(_maybe_json(text)) if check_seq else None
                    rounds.append((t0, before, reply_seq))
                    if tally.seen < tally.target:
                        remaining = t0 + timeout_s - time.perf_counter()
                        with suppress(TimeoutError):
                            await asyncio.wait_for(tally.done.wait(), max(remaining, 0.001))
                    await asyncio.sleep(0.002)  # let the server finish the fan-out's tail work
            finally:
                gc.enable()
                toggler.close()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return _collate(subs, rounds, toggles, errors)


def _collate(
    subs: list[Subscriber], rounds: list[tuple[float, list[int], int | None]], toggles: int,
    errors: list[str],
) -> StreamResult:
    """Match each toggle to the next change event on every stream; latency = stamp - t0."""
    latencies: list[float] = []
    missing = mismatches = 0
    parsed = [s.changes() for s in subs]
    for t0, before, reply_seq in rounds:
        for changes, b in zip(parsed, before, strict=True):
            if len(changes) <= b:
                missing += 1
                continue
            stamp, _ident, data = changes[b]
            if stamp - t0 > 0:
                latencies.append(stamp - t0)
            event_seq = _seq_of(_maybe_json(data))
            if reply_seq is not None and event_seq != reply_seq:
                mismatches += 1
    sample = next((c[0] for c in parsed if c), None)
    return StreamResult(
        subscribers=len(subs),
        toggles=toggles,
        latencies_s=latencies,
        missing=missing,
        errors=errors,
        seq_mismatches=mismatches,
        sample_event=(
            {"id": sample[1], "data": _maybe_json(sample[2])} if sample is not None else None
        ),
        sample_snapshot=subs[0].snapshot if subs else None,
    )


def _seq_of(obj: Any) -> int | None:
    """The sequence number in a toggle reply or event (top level, or under "change")."""
    if isinstance(obj, dict):
        for key in ("seq", "sequence"):
            if isinstance(obj.get(key), int):
                return int(obj[key])
        for value in obj.values():
            if isinstance(value, dict) and isinstance(value.get("seq"), int):
                return int(value["seq"])
    return None


def measure(
    base_url: str, toggle: Request, headers: dict[str, str], *, subscribers: int, toggles: int,
    events_path: str, timeout_s: float = 2.0, check_seq: bool = True,
) -> StreamResult:
    """Run :func:`measure_async` on uvloop when available (less harness overhead per event)."""
    coro = measure_async(
        base_url, toggle, headers, subscribers=subscribers, toggles=toggles,
        events_path=events_path, timeout_s=timeout_s, check_seq=check_seq,
    )
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def check_event_shape(result: StreamResult) -> str | None:
    """The contract: a ``change`` event with ``id`` and JSON data carrying seq/pin/actor/cause."""
    if result.errors:
        return "; ".join(result.errors)
    if result.sample_event is None:
        return "no change event arrived"
    data = result.sample_event["data"]
    if not isinstance(data, dict):
        return f"change data is not a JSON object: {data!r:.80}"
    missing = [k for k in ("seq", "pin", "actor", "cause") if k not in data]
    if missing:
        return f"change data lacks {missing}"
    if result.sample_event["id"] is None or str(data["seq"]) != str(result.sample_event["id"]):
        return f"event id {result.sample_event['id']!r} is not its seq {data['seq']!r}"
    if result.missing:
        return f"{result.missing} deliveries missing"
    return None
