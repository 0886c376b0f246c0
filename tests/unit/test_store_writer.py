"""The store's writer thread: what one pass of the loop hands it, how a batch is written,
and what it tells the keyring about other connections' commits."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pinpanel.changes import Actor, ChangeRecord, format_time
from pinpanel.errors import StoreError
from pinpanel.store import Store
from pinpanel.store import core as store_core

USER = Actor("tester", "api", "127.0.0.1")


def record(pin: int = 18, new: bool = True) -> ChangeRecord:
    return ChangeRecord(pin=pin, pin_id=f"gpio{pin}", old=not new, new=new, actor=USER,
                        at=format_time(datetime.now(UTC)))


def counting_batches(store: Store) -> list[int]:
    batches: list[int] = []
    run_batch = store._run_batch

    def counting(batch: list[store_core._Job]) -> None:
        batches.append(len(batch))
        run_batch(batch)

    store._run_batch = counting  # type: ignore[method-assign]
    return batches


async def test_everything_submitted_in_one_pass_of_the_loop_is_one_batch(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    batches = counting_batches(store)
    try:
        futures = [store.commit([record(18, i % 2 == 0)]) for i in range(100)]
        done = await asyncio.gather(*futures)
        assert [c.seq for changes in done for c in changes] == list(range(1, 101))
        assert batches == [100]  # one hand-over, one transaction, one fsync
        more = [store.commit([record(23)]) for _ in range(store_core.BATCH_MAX + 10)]
        await asyncio.gather(*more)
        assert batches[1:] == [store_core.BATCH_MAX, 10]  # a batch never grows past the max
    finally:
        store.close()


async def test_many_changes_of_one_pin_are_each_in_history_and_the_last_is_its_state(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        futures = [store.commit([record(18, i % 2 == 0), record(23, i % 2 == 1)])
                   for i in range(7)]
        await asyncio.gather(*futures)
        with store.reading() as conn:
            history = conn.execute("SELECT seq, pin, new FROM history ORDER BY seq").fetchall()
            state = conn.execute("SELECT pin, state, seq FROM pin_state ORDER BY pin").fetchall()
        assert history == [row for i in range(7) for row in (
            (2 * i + 1, 18, int(i % 2 == 0)), (2 * i + 2, 23, int(i % 2 == 1)))]
        assert state == [(18, 1, 13), (23, 0, 14)]
        assert {pin: c.seq for pin, c in store.last_changes().items()} == {18: 13, 23: 14}
    finally:
        store.close()


async def test_work_between_pin_changes_sees_the_ones_before_it(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    batches = counting_batches(store)

    def read_state(conn: sqlite3.Connection) -> list[tuple[int, int]]:
        return conn.execute("SELECT pin, seq FROM pin_state ORDER BY pin").fetchall()

    try:
        first = store.commit([record(18)])
        seen = store.write(read_state)
        second = store.commit([record(23)])
        await asyncio.gather(first, second)
        assert await seen == [(18, 1)]  # 18 already written, 23 not yet: job order kept
        assert batches == [3]
    finally:
        store.close()


async def test_changes_submitted_just_before_close_are_committed(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.commit([record(18)])
    store.close()  # in the same pass: the hand-over is still to come
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT seq, pin FROM history").fetchall() == [(1, 18)]
    finally:
        conn.close()


async def test_the_writer_counts_other_connections_commits_not_its_own_pin_changes(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    other = Store.open(tmp_path)  # another process's connections, as the CLI would have
    try:
        assert store.writes_seen is None  # nothing committed yet: nothing to vouch for
        await store.commit([record(18)])
        assert store.writes_seen is not None
        looked_at, count = store.writes_seen
        for _ in range(3):
            await store.commit([record(18)])
        assert store.writes_seen[1] == count  # its own pin changes: nothing for the keyring
        assert store.writes_seen[0] >= looked_at
        other.write_sync(lambda conn: conn.execute("INSERT INTO meta VALUES ('a', 'b')"))
        assert store.writes_seen[1] == count  # not seen until the writer looks again
        await store.commit([record(18)])
        assert store.writes_seen[1] == count + 1  # its next transaction saw the commit
        await store.commit([record(18)])
        assert store.writes_seen[1] == count + 1
        await store.write_meta("b", "c")  # work other than pin changes counts too
        assert store.writes_seen[1] == count + 2
    finally:
        other.close()
        store.close()


async def test_a_failed_batch_vouches_for_nothing_and_the_next_one_counts_what_came_before(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    other = Store.open(tmp_path)
    try:
        await store.commit([record(18)])
        assert store.writes_seen is not None
        before = store.writes_seen
        other.write_sync(lambda conn: conn.execute("INSERT INTO meta VALUES ('a', 'b')"))
        broken = ChangeRecord(18, None, False, True, USER, "now")  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            await store.commit([broken])
        assert store.writes_seen == before  # no commit: no new moment to vouch for
        await store.commit([record(18)])
        assert store.writes_seen[1] == before[1] + 1  # the other commit was not forgotten
    finally:
        other.close()
        store.close()
