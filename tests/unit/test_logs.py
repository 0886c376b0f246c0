"""Logging set-up: the handler that writes a group of lines (a group commit's) in one go."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from pinpanel import changelog, logs
from pinpanel.changes import Actor, Change, Committed, PinView

MORE = {"more": True}


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, CountingStream, logs.GroupHandler]]:
    stream = CountingStream()
    handler = logs.GroupHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("pinpanel.test_logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, stream, handler
    log.removeHandler(handler)
    log.propagate = True


def test_a_line_goes_out_the_moment_it_is_logged(
        logger: tuple[logging.Logger, CountingStream, logs.GroupHandler]) -> None:
    log, stream, _ = logger
    log.info("at once")
    assert stream.writes == ["INFO at once\n"]


async def test_a_group_goes_out_in_one_write_with_its_last_line(
        logger: tuple[logging.Logger, CountingStream, logs.GroupHandler]) -> None:
    log, stream, _ = logger
    log.info("line 0", extra=MORE)
    log.info("line 1", extra=MORE)
    assert stream.getvalue() == ""
    log.info("line 2")
    assert stream.writes == ["INFO line 0\nINFO line 1\nINFO line 2\n"]


async def test_a_line_from_another_thread_goes_out_after_the_held_ones(
        logger: tuple[logging.Logger, CountingStream, logs.GroupHandler]) -> None:
    log, stream, _ = logger
    log.info("held", extra=MORE)
    thread = threading.Thread(target=lambda: log.warning("from a thread"))
    thread.start()
    thread.join()
    assert stream.getvalue() == "INFO held\nWARNING from a thread\n"


async def test_a_group_whose_end_never_comes_goes_out_at_the_end_of_the_pass(
        logger: tuple[logging.Logger, CountingStream, logs.GroupHandler]) -> None:
    log, stream, handler = logger
    log.info("held", extra=MORE)
    await asyncio.sleep(0)
    assert stream.getvalue() == "INFO held\n"
    log.info("held again", extra=MORE)
    handler.flush()  # what logging.shutdown does at exit
    assert stream.getvalue() == "INFO held\nINFO held again\n"


async def test_the_change_lines_of_a_pass_are_one_group_after_the_pass_with_their_fields(
        logger: tuple[logging.Logger, CountingStream, logs.GroupHandler],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, stream, handler = logger
    handler.setFormatter(logs.JsonFormatter())
    changes = logging.getLogger("pinpanel.changes")
    monkeypatch.setattr(changes, "handlers", [handler])
    monkeypatch.setattr(changes, "propagate", False)
    level = changes.level
    changes.setLevel(logging.INFO)  # setLevel, not an attribute: it clears the level cache

    def change(seq: int) -> Change:
        committed = Committed(18, "gpio18", False, True, Actor("phone", "api", "10.0.0.2"),
                              "2026-12-03T05:00:00.000Z", seq)
        return Change(committed, PinView(18, "gpio18", "Relay", "output", True, False, seq,
                                         committed.at))

    try:
        changelog.log_change(change(7))
        changelog.log_change(change(8))
        assert stream.getvalue() == ""  # after the waiters of the commit, in this pass
        await asyncio.sleep(0)
    finally:
        changes.setLevel(level)
    assert len(stream.writes) == 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == ("seq=7 GPIO18 (gpio18) on cause=api actor=phone "
                                   "client=10.0.0.2 at=2026-12-03T05:00:00.000Z")
    assert [line["seq"] for line in lines] == [7, 8]
    assert {k: lines[0][k] for k in ("event", "pin", "id", "state", "old", "actor")} == {
        "event": "change", "pin": 18, "id": "gpio18", "state": True, "old": False,
        "actor": "phone"}
    assert "more" not in lines[0]  # the hint is the handler's, not a field of the line
