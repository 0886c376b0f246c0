"""The event stream against a real server process: order, resume, fan-out, slow and gone
clients, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx

from tests.e2e.sse import Reader, async_client, raw_request
from tests.support import JSON, ServerFactory, ServerProcess


async def subscribers(http: httpx.AsyncClient) -> int:
    return int((await http.get("/api/v1/system")).json()["subscribers"])


async def wait_subscribers(http: httpx.AsyncClient, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (count := await subscribers(http)) != expected:
        assert time.monotonic() < deadline, f"{count} subscribers, expected {expected}"
        await asyncio.sleep(0.05)


async def last_seq(http: httpx.AsyncClient) -> int:
    return int((await http.get("/api/v1/system")).json()["seq"])


async def test_snapshot_then_one_change_per_commit_in_sequence_order(
        make_server: ServerFactory) -> None:
    server = make_server()
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        assert stream.status == 200 and stream.retry is not None
        snapshot = stream.events[0]
        assert snapshot.event == "snapshot"
        listed = (await http.get("/api/v1/pins")).json()
        assert snapshot.data["pins"] == listed["pins"]
        assert snapshot.id == snapshot.data["seq"] == listed["seq"]
        # every path that switches a pin: API, PUT, the tutorial's API, the page's form
        answers = [
            (await http.post("/api/v1/pins/18/on")).json(),
            (await http.put("/api/v1/pins/23", json={"state": True})).json(),
        ]
        assert (await http.post("/api/toggle/24", headers=JSON)).json() == {"Success": True}
        assert (await http.post("/toggle", params={"pin": "18"})).status_code == 303
        final = await last_seq(http)
        await stream.wait_seq(final)
        changes = stream.changes
        assert [c.id for c in changes] == list(range(snapshot.id + 1, final + 1))
        assert [c.data["seq"] for c in changes] == [c.id for c in changes]
        assert [(c.data["pin"]["pin"], c.data["pin"]["state"], c.data["cause"])
                for c in changes] == [(18, True, "api"), (23, True, "api"),
                                      (24, True, "api"), (18, False, "form")]
        assert [c.data["pin"] for c in changes[:2]] == answers  # the response is the event
        assert changes[0].data["old"] is False
        assert changes[0].data["actor"] == f"tests-{server.port}"  # the token's name


async def test_last_event_id_replays_what_the_client_missed(make_server: ServerFactory) -> None:
    server = make_server()
    async with async_client(server) as http:
        async with Reader(http) as first:
            await first.wait_for(lambda r: r.events, "snapshot")
            seen = first.last_id
        assert seen is not None
        for pin in (18, 23, 24):
            await http.post(f"/api/v1/pins/{pin}/toggle")
        async with Reader(http, headers={"Last-Event-ID": str(seen)}) as again:
            await again.wait_seq(seen + 3)
            assert [e.event for e in again.events] == ["change"] * 3
            assert [c.data["pin"]["pin"] for c in again.changes] == [18, 23, 24]
            await http.post("/api/v1/pins/18/off")  # live changes follow the replay
            await again.wait_seq(seen + 4)
        async with Reader(http, params={"last_event_id": str(seen + 2)}) as by_query:
            await by_query.wait_seq(seen + 4)
            assert [e.id for e in by_query.events] == [seen + 3, seen + 4]
        assert (await http.get("/api/v1/events?last_event_id=soon")).status_code == 400


async def test_resume_after_the_changes_are_forgotten_gets_a_snapshot(
        make_server: ServerFactory) -> None:
    server = make_server()
    async with async_client(server) as http:
        async with Reader(http) as first:
            await first.wait_for(lambda r: r.events, "snapshot")
            seen = first.last_id
        await http.post("/api/v1/pins/18/on")
    assert seen is not None
    assert server.stop() == 0
    server.start()  # a restart forgets every change it held for replay
    async with async_client(server) as http:
        await http.post("/api/v1/pins/23/on")
        async with Reader(http, headers={"Last-Event-ID": str(seen)}) as again:
            await again.wait_for(lambda r: r.events, "snapshot")
            snapshot = again.events[0]
            assert snapshot.event == "snapshot" and snapshot.id == await last_seq(http)
            states = {p["pin"]: p["state"] for p in snapshot.data["pins"]}
            assert states == {18: True, 23: True, 24: False}


async def test_a_hundred_subscribers_each_receive_every_change(
        make_server: ServerFactory) -> None:
    server = make_server()
    async with async_client(server, connections=120) as http:
        readers = [Reader(http) for _ in range(100)]
        await asyncio.gather(*(r.__aenter__() for r in readers))
        try:
            await asyncio.gather(*(r.wait_for(lambda x: x.events, "snapshot")
                                   for r in readers))
            assert await subscribers(http) == 100
            start = await last_seq(http)
            async with async_client(server, connections=10) as writer:
                await asyncio.gather(*(writer.post(f"/api/v1/pins/{pin}/toggle")
                                       for pin in (18, 23, 24) * 20))
            final = await last_seq(http)
            assert final == start + 60
            await asyncio.gather(*(r.wait_seq(final) for r in readers))
            expected = list(range(start + 1, final + 1))
            for reader in readers:
                assert [c.id for c in reader.changes] == expected
        finally:
            await asyncio.gather(*(r.close() for r in readers))
        await wait_subscribers(http, 0)


# Big events and an interlocked pair (two changes per command) fill a stalled client's
# socket buffers (megabytes on loopback) and then its 512-change queue in a few hundred
# commands instead of thousands.
BIG = "x" * 16_000
BIG_PAIR = f"""
[[pins]]
pin = 20
name = "{BIG}"
[[pins]]
pin = 21
name = "{BIG}"
[[interlocks]]
pins = [20, 21]
"""


async def test_a_client_that_stops_reading_is_dropped_and_the_others_are_not(
        make_server: ServerFactory) -> None:
    server = make_server(BIG_PAIR)
    async with async_client(server) as http, Reader(http) as reader:
        await reader.wait_for(lambda r: r.events, "snapshot")
        stuck = raw_request(server, rcvbuf=2048)  # asks, then never reads
        try:
            await wait_subscribers(http, 2)
            async with async_client(server, connections=20) as writer:
                for _ in range(200):  # bursts the reader can keep up with, until the drop
                    await asyncio.gather(*(writer.post(f"/api/v1/pins/{pin}/on")
                                           for pin in (20, 21) * 20))
                    await reader.wait_seq(await last_seq(http))
                    if await subscribers(http) == 1:
                        break
                assert await subscribers(http) == 1, "the stalled client was never dropped"
                await writer.post("/api/v1/pins/20/toggle")  # the board still answers
            final = await last_seq(http)
            await reader.wait_seq(final)
            ids = [c.id for c in reader.changes]
            assert ids == list(range(reader.events[0].id + 1, final + 1))  # none missed
            assert reader.error is None and not reader.ended
            # The server let go of the stalled connection: reading now ends in EOF.
            stuck.settimeout(30)
            while stuck.recv(1 << 20):
                pass
            assert "fell behind and was dropped" in server.log()
        finally:
            stuck.close()


async def test_no_subscriber_is_left_after_a_thousand_connects(
        make_server: ServerFactory) -> None:
    server = make_server()
    async with async_client(server, connections=25) as http:

        async def polite() -> None:  # reads the snapshot, then hangs up
            async with http.stream("GET", "/api/v1/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        break

        def abrupt() -> None:  # hangs up at once, maybe before the response starts
            with contextlib.closing(raw_request(server)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

        for batch in range(40):
            await asyncio.gather(*(polite() for _ in range(23)))
            for _ in range(2):
                abrupt()
            if batch % 10 == 9:
                await http.post("/api/v1/pins/18/toggle")  # changes while clients come and go
        await wait_subscribers(http, 0)
        async with Reader(http) as reader:  # and the stream still works afterwards
            await reader.wait_for(lambda r: r.events, "snapshot")
            assert await subscribers(http) == 1


def test_stopping_the_server_ends_open_streams_cleanly(make_server: ServerFactory) -> None:
    server: ServerProcess = make_server()

    async def run() -> list[Reader]:
        async with async_client(server) as http:
            readers = [Reader(http) for _ in range(5)]
            for reader in readers:
                await reader.__aenter__()
                await reader.wait_for(lambda r: r.events, "snapshot")
            code = await asyncio.to_thread(server.stop)
            assert code == 0
            for reader in readers:
                await reader.wait_for(lambda r: r.ended or r.error is not None, "end")
            return readers

    readers = asyncio.run(run())
    assert all(r.ended and r.error is None for r in readers)
    assert "timeout graceful shutdown exceeded" not in server.log()
    assert "stopped cleanly" in server.log()


async def test_the_stream_needs_the_read_scope(make_server: ServerFactory) -> None:
    server = make_server()
    reader_token = server.create_token("watcher", "read")
    async with async_client(server, token=reader_token) as http:
        async with Reader(http) as stream:
            await stream.wait_for(lambda r: r.events, "snapshot")
            assert stream.events[0].event == "snapshot"
        assert (await http.post("/api/v1/pins/18/on")).status_code == 403
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        refused = await anonymous.get("/api/v1/events")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"


LOOPING_RULES = """
[[pins]]
pin = 17
id = "ping"
[[pins]]
pin = 27
id = "pong"
[[pins]]
pin = 22
id = "other"

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


async def test_a_rule_stopped_by_the_loop_protection_is_one_event_on_the_stream(
        make_server: ServerFactory) -> None:
    server = make_server(LOOPING_RULES)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        await http.post("/api/v1/pins/ping/on")
        await stream.wait_for(lambda r: any(e.event == "rule_stopped" for e in r.events),
                              "rule_stopped")
        # A change after the stop on a pin no rule watches: once the stream has it, it has
        # everything published before it (and a second stop would have been published).
        barrier = (await http.post("/api/v1/pins/other/on")).json()["seq"]
        await stream.wait_seq(barrier)
        stops = [e for e in stream.events if e.event == "rule_stopped"]
        assert len(stops) == 1 and stops[0].id is None
        rule = stops[0].data["rule"]
        assert stops[0].data["reason"] == "depth"
        assert stops[0].data["detail"] == (await http.get(f"/api/v1/rules/{rule}")).json()[
            "stopped"]
        assert f"rule {rule} stopped: loop" in server.log()
        # A resume gets the missed changes, then the rule's state, not a replay of events.
        async with Reader(http, headers={"Last-Event-ID": str(barrier - 1)}) as again:
            await again.wait_for(lambda r: any(e.event == "rule_stopped" for e in r.events),
                                 "rule_stopped in the opening")
            assert [e.event for e in again.events] == ["change", "rule_stopped"]
            assert again.events[1].data == stops[0].data
        assert (await http.put(f"/api/v1/rules/{rule}", json={"enabled": True})).is_success
        await stream.wait_for(lambda r: any(e.event == "rule_resumed" for e in r.events),
                              "rule_resumed")
        resumed = [e.data for e in stream.events if e.event == "rule_resumed"]
        assert [(d["rule"], d["enabled"]) for d in resumed] == [(rule, True)]
