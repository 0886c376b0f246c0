"""The page's history helpers: timelines from audit rows, time and duration wording, RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pinpanel.changes import Actor, Committed, format_time
from pinpanel.web.history import (
    WIDTH,
    LastChange,
    build_timeline,
    duration,
    parse_rfc3339,
    short_time,
)
from pinpanel.web.problems import Problem

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC).timestamp()
HOUR = 3600
PHONE = Actor("phone", "api")


def row(seq: int, hours_ago: float, new: bool, *, first: bool = False) -> Committed:
    """A change ``hours_ago`` before NOW; ``first``: the pin's first record (old is null)."""
    at = format_time(datetime.fromtimestamp(NOW - hours_ago * HOUR, UTC))
    return Committed(18, "gpio18", None if first else not new, new, PHONE, at, seq)


def current(state: bool) -> Committed:
    return Committed(18, "gpio18", None, state, PHONE, "2026-01-01T00:00:00.000Z", 1)


def test_no_change_in_the_window_draws_the_current_state_throughout() -> None:
    on = build_timeline([], current(True), NOW)
    assert on.on == ((0.0, WIDTH),) and on.unknown == () and on.changes == 0
    assert on.on_seconds == 24 * HOUR
    off = build_timeline([], current(False), NOW)
    assert off.on == () and off.label == "off for the whole of the last 24 hours"


def test_changes_become_on_spans_in_minutes() -> None:
    rows = [row(2, 12, True), row(3, 6, False), row(4, 1, True)]
    timeline = build_timeline(rows, current(True), NOW)
    assert timeline.on == ((720.0, 360.0), (1380.0, 60.0))
    assert timeline.on_seconds == 7 * HOUR
    assert timeline.label == "3 changes in the last 24 hours; on for 7 h in total"


def test_the_state_before_the_first_change_is_its_old_value() -> None:
    timeline = build_timeline([row(5, 3, False)], current(False), NOW)
    assert timeline.on == ((0.0, 1260.0),)


def test_unknown_before_the_first_record_or_when_truncated() -> None:
    first_ever = build_timeline([row(1, 2, True, first=True)], current(True), NOW)
    assert first_ever.unknown == ((0.0, 1320.0),) and first_ever.on == ((1320.0, 120.0),)
    truncated = build_timeline([row(9, 2, True)], current(True), NOW, truncated=True)
    assert truncated.unknown == ((0.0, 1320.0),)
    nothing = build_timeline([], None, NOW)
    assert nothing.unknown == ((0.0, WIDTH),) and nothing.label == "no record for the last 24 hours"


def test_a_short_pulse_stays_visible_and_clock_jumps_stay_in_the_window() -> None:
    pulse = build_timeline([row(2, 5, True), row(3, 5 - 0.5 / HOUR, False)], current(False), NOW)
    assert pulse.on[0][1] >= 4 and pulse.label.endswith("on for under 1 s in total")
    # a row stamped in the future (clock jumped back since) and one before the window
    jumped = build_timeline([row(2, 30, True), row(3, -2, False)], current(False), NOW)
    assert jumped.on == ((0.0, WIDTH),)


def test_short_time_reads_like_a_person_would_say_it() -> None:
    now = datetime.now(UTC)
    assert short_time(now, now) == now.astimezone().strftime("%H:%M")
    three_days = now - timedelta(days=3)
    assert short_time(three_days, now) == three_days.astimezone().strftime("%a %H:%M")
    for moment in (now - timedelta(days=60), datetime(2020, 3, 4, 5, 6, tzinfo=UTC)):
        local = moment.astimezone()
        year = "" if local.year == now.astimezone().year else f" {local.year}"
        expected = f"{local.day} {local.strftime('%b')}{year} {local.strftime('%H:%M')}"
        assert short_time(moment, now) == expected


def test_last_change_text() -> None:
    change = LastChange(True, "2026-11-26T14:02:00.000Z", "14:02", "phone", "api")
    assert change.text == "On since 14:02, by phone"
    assert LastChange(False, "", "09:00", "system", "startup").text == (
        "Off since 09:00, by system (startup)")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.2, "under 1 s"), (59, "59 s"), (60, "1 min"), (3600, "1 h"),
    (3600 * 3 + 60 * 20, "3 h 20 min"),
])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("text", "stored"), [
    ("2026-11-26T14:02:00Z", "2026-11-26T14:02:00.000Z"),
    ("2026-11-26t14:02:00.123456789z", "2026-11-26T14:02:00.123Z"),
    ("2026-11-26T16:02:00+02:00", "2026-11-26T14:02:00.000Z"),
    ("2026-11-26 09:02:00.5-05:00", "2026-11-26T14:02:00.500Z"),
])
def test_rfc3339_is_parsed_to_the_stores_form(text: str, stored: str) -> None:
    assert parse_rfc3339("since", text) == stored


@pytest.mark.parametrize("text", [
    "2026-11-26", "2026-11-26T14:02:00", "yesterday", "2026-13-01T00:00:00Z",
    "2026-11-26T14:02:00 02:00", "",
])
def test_rfc3339_refuses_what_is_not(text: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_rfc3339("since", text)
    assert caught.value.status == 422 and "since" in caught.value.detail
