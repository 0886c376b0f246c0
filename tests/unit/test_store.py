"""The state database: durable commits, gapless seq, integrity, migrations, retention, reads.

Also the board's side of durability: a failed commit puts the pins back before anyone is
answered, and a restore never brings two interlocked pins up together.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pinpanel.changes import Actor, ChangeRecord, format_time
from pinpanel.errors import StoreCorruptError, StoreError, StoreVersionError
from pinpanel.store import (
    DB_NAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    check_integrity,
)
from pinpanel.store import schema as store_schema
from tests.unit.test_store_writer import counting_batches

USER = Actor("tester", "api", "127.0.0.1")


def record(pin: int = 18, new: bool = True, at: str | None = None) -> ChangeRecord:
    return ChangeRecord(pin=pin, pin_id=f"gpio{pin}", old=not new, new=new, actor=USER,
                        at=at or format_time(datetime.now(UTC)))


def days_ago(days: float) -> str:
    return format_time(datetime.now(UTC) - timedelta(days=days))


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def history_seqs(path: Path) -> list[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT seq FROM history ORDER BY seq")]
    finally:
        conn.close()


async def make_real_db(data_dir: Path, changes: int = 300) -> Path:
    store = Store.open(data_dir)
    try:
        for start in range(0, changes, 100):  # a hundred changes per commit: quick to make
            await store.commit([record(18 + i % 3, i % 2 == 0)
                                for i in range(start, min(start + 100, changes))])
    finally:
        store.close()
    return data_dir / DB_NAME


# -- creating and committing -----------------------------------------------------------------


async def test_new_database_is_private_durable_and_current(tmp_path: Path) -> None:
    data_dir = tmp_path / "state" / "pinpanel"
    store = Store.open(data_dir)
    try:
        await store.commit([record()])
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for path in data_dir.iterdir():  # the database, its WAL and shared-memory files
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync per commit
        assert store._read.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        store.close()


async def test_commits_get_gapless_seq_in_queue_order_and_share_fsyncs(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    batches = counting_batches(store)
    try:
        futures = [store.commit([record(18, i % 2 == 0), record(23, i % 2 == 1)])
                   for i in range(100)]
        resolved: list[int] = []
        for future in futures:
            future.add_done_callback(lambda f: resolved.append(f.result()[0].seq))
        results = await asyncio.gather(*futures)
        seqs = [c.seq for done in results for c in done]
        assert seqs == list(range(1, 201))
        assert resolved == sorted(resolved)  # futures settle in commit order
        assert store.last_seq == 200
        assert len(batches) < 100  # queued work shared transactions (group commit)
    finally:
        store.close()


async def test_a_commit_is_visible_to_another_connection_when_it_resolves(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        done = await store.commit([record(24, True)])
        assert history_seqs(store.path) == [done[0].seq]
    finally:
        store.close()


async def test_a_failed_commit_fails_its_waiters_and_leaves_no_gap(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        await store.commit([record()])
        broken = ChangeRecord(18, None, False, True, USER, "now")  # type: ignore[arg-type]
        with pytest.raises(StoreError, match="durably"):
            await store.commit([record(23), broken])
        assert store.last_seq == 1
        after = await store.commit([record(24)])
        assert after[0].seq == 2
        assert history_seqs(store.path) == [1, 2]  # the failed batch left nothing
    finally:
        store.close()


async def test_a_failing_write_job_undoes_only_itself(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    gate = threading.Event()

    def wait(conn: sqlite3.Connection) -> None:
        gate.wait(10)

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta VALUES ('doomed', 'x')")
        raise ValueError("token name taken")

    def insert(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO meta VALUES ('kept', 'y')")
        return "ok"

    try:
        blocker = store.write(wait)
        await asyncio.sleep(0.05)  # the writer is now busy; the next jobs share one batch
        first = store.commit([record(18)])
        failing = store.write(insert_then_fail)
        kept = store.write(insert)
        second = store.commit([record(23)])
        gate.set()
        await blocker
        assert [c.seq for c in await first] == [1]
        with pytest.raises(ValueError, match="token name taken"):
            await failing
        assert await kept == "ok"
        assert [c.seq for c in await second] == [2]
        with store.reading() as conn:
            assert conn.execute("SELECT key FROM meta").fetchall() == [("kept",)]
        assert set(store.last_changes()) == {18, 23}
    finally:
        gate.set()
        store.close()


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    await store.commit([record()])
    store.close()
    store.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        store.commit([record()])


def test_write_sync_commits_outside_the_loop(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        store.write_sync(lambda conn: conn.execute("INSERT INTO meta VALUES ('a', 'b')"))
        with pytest.raises(ValueError, match="no"):
            store.write_sync(lambda conn: (conn.execute("INSERT INTO meta VALUES ('c', 'd')"),
                                           (_ for _ in ()).throw(ValueError("no"))))
        with store.reading() as conn:
            assert conn.execute("SELECT key FROM meta").fetchall() == [("a",)]
    finally:
        store.close()


# -- integrity ------------------------------------------------------------------------------------


def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    before = files_of(tmp_path)
    with pytest.raises(StoreCorruptError) as caught:
        Store.open(tmp_path)
    message = str(caught.value)
    assert str(path) in message and "not an SQLite database" in message
    assert "Move it aside" in message and "pinpanel restore FILE" in message
    assert files_of(tmp_path) == before  # same bytes, and no -wal/-shm beside it


@pytest.mark.parametrize("keep", [0.5, 0.2, 0.02])
async def test_truncated_database_is_refused_and_left_untouched(tmp_path: Path,
                                                                keep: float) -> None:
    path = await make_real_db(tmp_path / "d")
    os.truncate(path, int(path.stat().st_size * keep))
    before = files_of(path.parent)
    with pytest.raises(StoreCorruptError, match="is damaged"):
        Store.open(path.parent)
    assert files_of(path.parent) == before


async def test_damaged_page_is_found_by_the_check(tmp_path: Path) -> None:
    path = await make_real_db(tmp_path / "d", changes=2000)
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 3 + 8: page * 3 + 200] = os.urandom(192)  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    before = files_of(path.parent)
    with pytest.raises(StoreCorruptError):
        Store.open(path.parent)
    assert files_of(path.parent) == before


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = await make_real_db(tmp_path, changes=3)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = files_of(tmp_path)
    with pytest.raises(StoreVersionError, match="newer than this pinpanel knows"):
        Store.open(tmp_path)
    assert files_of(tmp_path) == before


def test_a_directory_where_the_database_should_be_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)


def test_an_empty_file_is_a_new_database(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).touch()  # e.g. killed between creating the file and writing it
    store = Store.open(tmp_path)
    store.close()
    assert history_seqs(tmp_path / DB_NAME) == []


async def test_a_hot_write_ahead_log_is_checked_and_recovered(tmp_path: Path) -> None:
    """What kill -9 leaves: committed pages only in the -wal file, never checkpointed."""
    store = Store.open(tmp_path / "live")
    try:
        for i in range(20):
            await store.commit([record(18, i % 2 == 0)])
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for name in (DB_NAME, DB_NAME + "-wal"):
            shutil.copy(tmp_path / "live" / name, crashed / name)
    finally:
        store.close()
    assert (crashed / (DB_NAME + "-wal")).stat().st_size > 0
    check_integrity(crashed / DB_NAME)
    recovered = Store.open(crashed)
    try:
        assert recovered.last_seq == 20
        assert recovered.last_changes()[18].new is False
    finally:
        recovered.close()


# -- migrations -----------------------------------------------------------------------------


def make_v1_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO history VALUES (1, '2026-01-01T00:00:00.000Z', 18, 'gpio18', "
                 "NULL, 1, 'api', 'phone', '10.0.0.5')")
    conn.execute("INSERT INTO pin_state VALUES (18, 1, 1, '2026-01-01T00:00:00.000Z', "
                 "'phone', 'api')")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


async def test_a_version_1_database_is_migrated_at_start_up(tmp_path: Path) -> None:
    assert SCHEMA_VERSION >= 2
    make_v1_database(tmp_path / DB_NAME)
    store = Store.open(tmp_path, max_age_days=0)
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master")}
        assert "sessions" in tables  # added by migration 2
        assert store.history()[0].actor.name == "phone"  # the data came along
        assert (await store.commit([record()]))[0].seq == 2
    finally:
        store.close()


def test_a_failing_migration_changes_nothing(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_v1_database(tmp_path / DB_NAME)
    broken = (*MIGRATIONS, "CREATE TABLE half (x INTEGER); THIS IS NOT SQL")
    monkeypatch.setattr(store_schema, "MIGRATIONS", broken)
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError):
        Store.open(tmp_path, max_age_days=0)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert version == len(MIGRATIONS)  # the good migrations ran, the broken one not at all
    assert "half" not in tables


# -- retention ------------------------------------------------------------------------------


async def test_rows_beyond_max_rows_are_trimmed_as_changes_arrive(tmp_path: Path) -> None:
    store = Store.open(tmp_path, max_rows=50)
    try:
        for i in range(200):
            await store.commit([record(18, i % 2 == 0)])
        seqs = history_seqs(store.path)
        assert 50 <= len(seqs) <= 55  # trimmed every max_rows/10 changes
        await store.trim()
        assert history_seqs(store.path) == list(range(151, 201))  # the newest 50 kept
    finally:
        store.close()


async def test_rows_older_than_max_age_are_trimmed(tmp_path: Path) -> None:
    store = Store.open(tmp_path, max_age_days=0)
    try:
        await store.commit([record(18, True, days_ago(120)), record(18, False, days_ago(100)),
                            record(23, True, days_ago(10)), record(24, True)])
    finally:
        store.close()
    store = Store.open(tmp_path, max_age_days=30)  # retention runs at start-up
    try:
        assert [r.seq for r in store.history(newest_first=False)] == [3, 4]
        assert store.last_changes()[18].new is False  # states are kept; only the log is trimmed
    finally:
        store.close()


async def test_seq_is_never_reused_after_a_trim(tmp_path: Path) -> None:
    store = Store.open(tmp_path, max_age_days=1)
    try:
        await store.commit([record(18, True, days_ago(5)), record(23, True, days_ago(4))])
        await store.trim()
        assert store.history() == []  # every row aged out
    finally:
        store.close()
    store = Store.open(tmp_path, max_age_days=1)
    try:
        assert store.last_seq == 2
        assert (await store.commit([record(24)]))[0].seq == 3
    finally:
        store.close()


# -- reads --------------------------------------------------------------------------------------


async def test_history_filters_and_cursor(tmp_path: Path) -> None:
    store = Store.open(tmp_path, max_age_days=0)
    try:
        times = [days_ago(3), days_ago(2), days_ago(1), days_ago(0)]
        await store.commit([record(18, True, times[0]), record(23, True, times[1]),
                            record(18, False, times[2]), record(24, True, times[3])])
        assert [r.seq for r in store.history()] == [4, 3, 2, 1]
        assert [r.seq for r in store.history(newest_first=False, limit=2)] == [1, 2]
        assert [r.seq for r in store.history(pins=[18])] == [3, 1]
        assert [r.seq for r in store.history(pins=[18, 24])] == [4, 3, 1]
        assert [r.seq for r in store.history(since=times[1])] == [4, 3, 2]
        assert [r.seq for r in store.history(until=times[1])] == [1]
        assert [r.seq for r in store.history(before_seq=3, limit=1)] == [2]
        assert [r.seq for r in store.history(after_seq=2)] == [4, 3]
        row = store.history(limit=1)[0]
        assert row.as_json() == {"seq": 4, "at": times[3], "pin": 24, "id": "gpio24",
                                 "old": False, "new": True, "cause": "api", "actor": "tester",
                                 "client": "127.0.0.1"}
    finally:
        store.close()


async def test_recent_reads_each_pins_newest_rows_in_the_window(tmp_path: Path) -> None:
    store = Store.open(tmp_path, max_age_days=0)
    try:
        await store.commit([record(23, True, days_ago(3))])  # before the window
        await store.commit([record(18, i % 2 == 0, days_ago(0.5)) for i in range(30)])
        await store.commit([record(24, True, days_ago(0.1))])
        recent = store.recent([18, 23, 24, 25], days_ago(1), per_pin=10)
        assert [r.seq for r in recent[18]] == list(range(22, 32))  # newest 10, oldest first
        assert recent[23] == [] and recent[25] == []
        assert [r.seq for r in recent[24]] == [32]
        assert store.recent([], days_ago(1), 10) == {}
    finally:
        store.close()
