"""The readings store: batches, exact rollups over days of a fake clock, and retention."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinpanel.store import readings as readingstore
from pinpanel.store.readings import RAW_KEEP_S, ReadingStore

DAY = 86_400
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a whole hour


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[ReadingStore]:
    opened = ReadingStore.open(tmp_path, clock=clock)
    yield opened
    opened.close()


def value_at(i: int) -> float:
    """Deterministic, jumpy, and exact in binary (quarters), so sums compare exactly."""
    return ((i * 7919) % 397) / 4 - 20


def fill(store: ReadingStore, clock: FakeClock, days: float, every: float = 30.0,
         ) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for i in range(int(days * DAY / every)):
        at = START + i * every
        clock.now = at
        value = value_at(i)
        store.add("tank", "temperature", at, value)
        store.observe("tank", "temperature", at, value)
        points.append((at, value))
    store.flush()
    return points


def expected(points: list[tuple[float, float]], step: int, since: float,
             until: float) -> list[tuple[float, int, float, float, float]]:
    groups: dict[int, list[float]] = defaultdict(list)
    for at, value in points:
        if since <= at < until:
            groups[int(at // step) * step].append(value)
    return [(float(b), len(v), min(v), sum(v) / len(v), max(v)) for b, v in sorted(groups.items())]


def as_tuples(buckets: list[readingstore.Bucket]) -> list[tuple[float, int, float, float, float]]:
    return [(b.at, b.n, b.min, b.avg, b.max) for b in buckets]


def test_three_days_give_exact_min_avg_max_per_minute_and_hour(
        store: ReadingStore, clock: FakeClock) -> None:
    points = fill(store, clock, 3)
    now = clock.now
    for step, source in ((60, "1m"), (3600, "1h"), (300, "1m"), (86_400, "1h")):
        since = START if step >= 3600 else now - 2 * DAY
        since = since // step * step  # buckets are whole: the range starts at one
        got_source, got = store.buckets("tank", "temperature", since, now + 1, step)
        assert got_source == source
        assert as_tuples(got) == expected(points, step, since, now + 1), step


def test_a_step_no_rollup_divides_is_folded_from_the_raw_readings(
        store: ReadingStore, clock: FakeClock) -> None:
    points = fill(store, clock, 0.5)
    since = clock.now - 3 * 3600
    source, got = store.buckets("tank", "temperature", since, clock.now + 1, 90)
    assert source == "raw"
    assert as_tuples(got) == expected(points, 90, since, clock.now + 1)


def test_raw_readings_come_back_as_written_with_errors_as_errors(
        store: ReadingStore, clock: FakeClock) -> None:
    store.add("tank", "temperature", START, 21.5)
    store.add("tank", "temperature", START + 30, None, "crc")
    store.add("tank", "temperature", START + 60, 21.75)
    # not written yet, still answered: the unwritten batch counts
    got = store.raw("tank", "temperature", START, START + 90)
    assert [(p.at, p.value, p.error) for p in got] == [
        (START, 21.5, None), (START + 30, None, "crc"), (START + 60, 21.75, None)]
    store.flush()
    assert store.raw("tank", "temperature", START, START + 90) == got
    assert store.counts()["raw"] == 3


def test_retention_removes_what_it_should_and_nothing_else(
        store: ReadingStore, clock: FakeClock) -> None:
    points = fill(store, clock, 3)
    now = clock.now
    store.prune(now)
    raw = store.raw("tank", "temperature", 0, now + 1)
    assert [(p.at, p.value) for p in raw] == [(a, v) for a, v in points
                                              if a * 1000 >= round((now - RAW_KEEP_S) * 1000)]
    # every 1-minute and 1-hour bucket is still there
    _, minutes = store.buckets("tank", "temperature", START, now + 1, 60)
    assert len(minutes) == 3 * 1440
    # 31 days on: the 1-minute buckets are gone, the hours stay
    clock.now = START + 31 * DAY + 3 * DAY
    store.prune()
    assert store.counts()["raw"] == 0
    assert store.counts()["rollup"] == 3 * 24
    source, hours = store.buckets("tank", "temperature", START, clock.now, 3600)
    assert source == "1h"
    assert as_tuples(hours) == expected(points, 3600, START, clock.now)
    # two years on: nothing left
    clock.now = START + 731 * DAY + 3 * DAY
    store.prune()
    assert store.counts()["rollup"] == 0


def test_the_source_is_the_coarsest_rollup_that_divides_the_step_and_holds_the_range(
        store: ReadingStore, clock: FakeClock) -> None:
    now = clock.now
    assert store.source_for(now - DAY, 0) == 0
    assert store.source_for(now - DAY, 30) == 0
    assert store.source_for(now - DAY, 60) == 60
    assert store.source_for(now - DAY, 300) == 60
    assert store.source_for(now - DAY, 3600) == 3600
    assert store.source_for(now - 40 * DAY, 7200) == 3600
    assert store.source_for(now - 40 * DAY, 60) == 60  # the only one that divides it


def test_a_counter_total_carries_over_from_the_newest_stored_value(
        tmp_path: Path, clock: FakeClock) -> None:
    first = ReadingStore.open(tmp_path, clock=clock)
    first.add("flow", "total", START, 10.5)
    first.add("flow", "total", START + 30, 11.0)
    first.close()  # close writes the last batch
    again = ReadingStore.open(tmp_path, clock=clock)
    try:
        assert again.last_value("flow", "total") == 11.0
        assert again.last_value("flow", "rate") is None
    finally:
        again.close()


def test_readings_are_written_in_batches_not_one_by_one(
        store: ReadingStore, clock: FakeClock) -> None:
    for i in range(250):
        store.add("tank", "temperature", START + i, 1.0)
    store.flush()
    # 100 + 100 by count, the rest on flush: never 250 transactions
    assert store.batches <= 3
    assert store.counts()["raw"] == 250


def test_an_hour_left_unrolled_by_a_crash_is_rolled_up_after_the_restart(
        tmp_path: Path) -> None:
    import sqlite3

    first_clock = FakeClock(START + 30 * 60)
    first = ReadingStore.open(tmp_path, clock=first_clock)
    for minute in range(1, 6):
        first.observe("tank", "temperature", START + minute * 60, float(minute))
    first.flush()  # the minutes are on disk, their hour is still open: not rolled up
    conn = sqlite3.connect(tmp_path / readingstore.DB_NAME)
    hours = "SELECT bucket, n, min, max, sum FROM rollup WHERE step = 3600"
    assert conn.execute(hours).fetchall() == []
    # the process dies here (no close); a new one starts two hours later
    again = ReadingStore.open(tmp_path, clock=FakeClock(START + 2 * 3600))
    try:
        again.prune()
        assert conn.execute(hours).fetchall() == [(int(START), 5, 1.0, 5.0, 15.0)]
        source, got = again.buckets("tank", "temperature", START, START + 3600, 3600)
        assert (source, as_tuples(got)) == ("1h", [(START, 5, 1.0, 3.0, 5.0)])
    finally:
        conn.close()
        again.close()
        first.close()
