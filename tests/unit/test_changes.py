"""The change vocabulary's time stamps: one fixed-width UTC form everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pinpanel import changes
from pinpanel.changes import format_time, parse_time, utc_now


def test_utc_now_is_format_time_of_now_truncated_to_the_millisecond(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_764_741_532_053_999_999]  # 2025-12-03T05:58:52.053999999Z
    monkeypatch.setattr(changes.time, "time_ns", lambda: clock[0])
    assert utc_now() == "2025-12-03T05:58:52.053Z"
    clock[0] += 1  # .054000000: the same second, its text reused
    assert utc_now() == "2025-12-03T05:58:52.054Z"
    clock[0] = 1_764_741_599_999_000_000  # the last millisecond of a minute
    assert utc_now() == "2025-12-03T05:59:59.999Z"
    clock[0] += 1_000_000  # the next second, minute and hour's text is made anew
    assert utc_now() == "2025-12-03T06:00:00.000Z"
    moment = datetime.fromtimestamp(clock[0] / 1e9, UTC)
    assert utc_now() == format_time(moment)
    assert parse_time(utc_now()) == moment


def test_utc_now_follows_the_real_clock() -> None:
    before = format_time(datetime.now(UTC))
    now = utc_now()
    after = format_time(datetime.now(UTC))
    assert before <= now <= after and len(now) == len(before) == 24
