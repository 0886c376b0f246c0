"""The store recovers by itself when another process took sequence numbers behind its back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from pinpanel.changes import Actor, ChangeRecord, format_time
from pinpanel.store import DB_NAME, Store

USER = Actor("tester", "api", "127.0.0.1")


def record(pin: int = 18, new: bool = True) -> ChangeRecord:
    return ChangeRecord(pin=pin, pin_id=f"gpio{pin}", old=not new, new=new, actor=USER,
                        at=format_time(datetime.now(UTC)))


def inject(path: Path, seqs: range) -> None:
    """Rows written by another connection, as a second server on the same file would."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for seq in seqs:
            conn.execute("INSERT INTO history (seq, at, pin, pin_id, old, new, cause, actor, "
                         "client) VALUES (?, ?, 23, 'gpio23', 0, 1, 'api', 'intruder', NULL)",
                         (seq, format_time(datetime.now(UTC))))
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_sequence_conflict_is_recovered_and_later_changes_keep_working(
        tmp_path: Path, caplog: object) -> None:
    store = Store.open(tmp_path)
    try:
        first = await store.commit([record(18, True)])
        assert [c.seq for c in first] == [1]
        inject(tmp_path / DB_NAME, range(2, 5))  # seqs 2..4 taken behind the writer's back
        after = await store.commit([record(18, False), record(24, True)])
        assert [c.seq for c in after] == [5, 6]  # continued after the intruder's rows
        later = await store.commit([record(18, True)])
        assert [c.seq for c in later] == [7]
        rows = store.history(newest_first=False)
        assert [(r.seq, r.actor.name) for r in rows] == [
            (1, "tester"), (2, "intruder"), (3, "intruder"), (4, "intruder"), (5, "tester"),
            (6, "tester"), (7, "tester")]
        assert store.last_changes()[18].seq == 7
    finally:
        store.close()
    assert "another process wrote changes up to seq 4" in caplog.text  # type: ignore[attr-defined]


async def test_token_writes_beside_the_conflict_are_not_lost(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        await store.commit([record(18, True)])
        inject(tmp_path / DB_NAME, range(2, 3))
        token = store.add_token("phone", "read", "ab" * 32, "2026-01-01T00:00:00Z")
        change = store.commit([record(18, False)])
        await token
        assert [c.seq for c in await change] == [3]
        assert [row[0] for row in store.token_list()] == ["phone"]
    finally:
        store.close()
