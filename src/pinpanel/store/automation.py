"""Automation's durable records: schedules and rules made over the API, their audit, and
the notifications outbox that one sender drains with retries."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

from pinpanel.changes import format_time
from pinpanel.store.core import StoreCore


class AutomationTables(StoreCore):
    """``automation``, its audit rows and ``outbox``."""

    def automation_items(self, kind: str) -> list[tuple[str, str | None, bool, str]]:
        """(id, spec JSON or None, enabled, updated_at) of each stored ``kind`` item."""
        with self.reading() as conn:
            rows = conn.execute("SELECT id, spec, enabled, updated_at FROM automation "
                                "WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        return [(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def put_automation_item(self, kind: str, item: str, spec: str | None, enabled: bool,
                            actor: str, action: str) -> asyncio.Future[None]:
        """Create or replace an item and write its audit row, in one transaction."""
        at = format_time(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO automation (kind, id, spec, enabled, updated_at)"
                         " VALUES (?, ?, ?, ?, ?)", (kind, item, spec, int(enabled), at))
            conn.execute("INSERT INTO automation_audit (at, actor, kind, item, action, spec) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (at, actor, kind, item, action, spec))

        return self._submit(work)

    def delete_automation_item(self, kind: str, item: str, actor: str) -> asyncio.Future[None]:
        at = format_time(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM automation WHERE kind = ? AND id = ?", (kind, item))
            conn.execute("INSERT INTO automation_audit (at, actor, kind, item, action) "
                         "VALUES (?, ?, ?, ?, 'delete')", (at, actor, kind, item))

        return self._submit(work)

    def audit_automation(self, kind: str, item: str, action: str, actor: str,
                         spec: str | None = None) -> asyncio.Future[None]:
        """An audit row alone (the rule engine stopping a rule in a loop, say)."""
        at = format_time(datetime.now(UTC))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO automation_audit (at, actor, kind, item, action, spec) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (at, actor, kind, item, action, spec))

        return self._submit(work)

    def automation_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest edits first: who changed which schedule or rule, how, when."""
        with self.reading() as conn:
            rows = conn.execute("SELECT seq, at, actor, kind, item, action, spec FROM "
                                "automation_audit ORDER BY seq DESC LIMIT ?", (limit,))
            names = ("seq", "at", "actor", "kind", "item", "action", "spec")
            return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]

    def queue_notification(self, target: str, body: str, now: float) -> asyncio.Future[int]:
        """Put a notification in the outbox, durably; its id once committed."""

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute("INSERT INTO outbox (created_at, target, body, next_at) "
                                  "VALUES (?, ?, ?, ?)",
                                  (format_time(datetime.now(UTC)), target, body, now))
            return int(cursor.lastrowid or 0)

        return self._submit(work)

    def due_notifications(self, now: float, limit: int = 20,
                          ) -> list[tuple[int, str, str, int]]:
        """(id, target, body, attempts) of outbox rows due by ``now``, oldest first."""
        with self.reading() as conn:
            rows = conn.execute("SELECT id, target, body, attempts FROM outbox WHERE "
                                "next_at <= ? ORDER BY next_at, id LIMIT ?", (now, limit))
            return [(r[0], r[1], r[2], r[3]) for r in rows.fetchall()]

    def next_notification_at(self) -> float | None:
        with self.reading() as conn:
            row = conn.execute("SELECT MIN(next_at) FROM outbox").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def notification_done(self, row_id: int) -> asyncio.Future[None]:
        """Sent (or given up on): the row leaves the outbox."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

        return self._submit(work)

    def notification_retry(self, row_id: int, next_at: float,
                           error: str) -> asyncio.Future[None]:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ?"
                         " WHERE id = ?", (next_at, error[:500], row_id))

        return self._submit(work)

