"""CoalescedTransport (web/limits.py): an answer's writes leave together, none waits long."""

from __future__ import annotations

import asyncio
from typing import Any

from pinpanel.web.limits import CoalescedTransport


class Recorder:
    """A transport that records what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, chunks: Any) -> None:
        self.calls.append(("writelines", tuple(chunks)))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_the_head_and_the_body_leave_in_one_writelines() -> None:
    raw = Recorder()
    transport = CoalescedTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert raw.calls == [("writelines", (b"HTTP/1.1 200 OK\r\n\r\n", b"body"))]
    await asyncio.sleep(0)
    assert len(raw.calls) == 1  # the turn's flush found nothing held


async def test_a_head_alone_leaves_at_the_loops_next_turn() -> None:
    raw = Recorder()
    transport = CoalescedTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert raw.calls == []
    await asyncio.sleep(0)
    assert raw.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\n")]


async def test_a_streams_next_event_goes_out_at_once() -> None:
    raw = Recorder()
    transport = CoalescedTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"event: snapshot\n\n")
    transport.write(b"event: change\n\n")
    assert raw.calls == [("writelines", (b"HTTP/1.1 200 OK\r\n\r\n", b"event: snapshot\n\n")),
                         ("write", b"event: change\n\n")]


async def test_close_writes_what_is_held_first() -> None:
    raw = Recorder()
    transport = CoalescedTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.close()
    assert raw.calls == [("write", b"HTTP/1.1 204 No Content\r\n\r\n"), ("close", None)]
    assert transport.is_closing()


async def test_nothing_is_written_to_a_connection_gone_meanwhile() -> None:
    raw = Recorder()
    transport = CoalescedTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    raw.closing = True  # the peer went away before the loop's next turn
    await asyncio.sleep(0)
    assert raw.calls == []


async def test_everything_else_is_the_transports_own() -> None:
    transport = CoalescedTransport(Recorder(), asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == "info:peername"
