"""The pins' committed state and the audit log: what each pin last was, and every change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pinpanel.changes import Committed
from pinpanel.store.core import _ROW_COLUMNS, StoreCore, _committed


class StateTables(StoreCore):
    """``pin_state`` and ``history``: read by the board at start-up and by the history API."""

    def last_changes(self) -> dict[int, Committed]:
        """Each pin's last committed change, by BCM number.

        ``pin_state`` keeps the state, seq, time, actor and cause; the rest comes from the
        change's history row, or is unknown if retention trimmed it (see :class:`Committed`).
        """
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT p.seq, p.changed_at, p.pin, coalesce(h.pin_id, ''), h.old, p.state, "
                "p.cause, p.actor, h.client, h.old_level, p.level, h.old_angle, p.angle "
                "FROM pin_state AS p LEFT JOIN history AS h ON h.seq = p.seq").fetchall()
        return {r[2]: _committed(r) for r in rows}

    def remembered(self) -> dict[int, tuple[float | None, float | None]]:
        """Each pin's last level above zero and last angle, for "on" after a restart.

        "on" brings a dimmed lamp back at the brightness it had, also when it was off when
        pinpanel stopped; that level is in the history (or lost to retention: then None).
        """
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT pin, (SELECT new_level FROM history AS l WHERE l.pin = h.pin AND "
                "l.new_level > 0 ORDER BY seq DESC LIMIT 1), (SELECT new_angle FROM history "
                "AS a WHERE a.pin = h.pin AND a.new_angle IS NOT NULL ORDER BY seq DESC "
                "LIMIT 1) FROM (SELECT DISTINCT pin FROM history) AS h").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def history(self, *, pins: Sequence[int] = (), since: str | None = None,
                until: str | None = None, before_seq: int | None = None,
                after_seq: int | None = None, limit: int = 100,
                newest_first: bool = True) -> list[Committed]:
        """Audit rows matching the filters, newest first by default (cursor: ``before_seq``).

        ``since`` is inclusive and ``until`` exclusive, both in the store's UTC form.
        """
        clauses: list[str] = []
        args: list[Any] = []
        if pins:
            clauses.append(f"pin IN ({','.join('?' * len(pins))})")
            args.extend(pins)
        for clause, value in (("at >= ?", since), ("at < ?", until),
                              ("seq < ?", before_seq), ("seq > ?", after_seq)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        # Only fixed clause strings are interpolated; every value is a bound parameter.
        sql = (f"SELECT {_ROW_COLUMNS} FROM history "  # noqa: S608
               f"{where} ORDER BY seq {order} LIMIT ?")
        with self.reading() as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return [_committed(r) for r in rows]

    def recent(self, pins: Sequence[int], since: str, per_pin: int) -> dict[int, list[Committed]]:
        """Each pin's changes from ``since`` on, oldest first, at most ``per_pin`` (the newest).

        One statement for every pin, each part an index range scan: the first seq of the
        window comes from the ``at`` index, then each pin reads its newest rows from
        ``(pin, seq)``. A busy pin can therefore not crowd the others out, and a pin with a
        long quiet past costs nothing. If the clock jumped back, rows after the window's
        first seq count as inside it (the caller clamps their times).
        """
        result: dict[int, list[Committed]] = {bcm: [] for bcm in pins}
        if not pins:
            return result
        part = (f"SELECT * FROM (SELECT {_ROW_COLUMNS} FROM history "  # noqa: S608
                "WHERE pin = ? AND seq >= (SELECT seq FROM history WHERE at >= ? "
                "ORDER BY at LIMIT 1) ORDER BY seq DESC LIMIT ?)")
        sql = " UNION ALL ".join([part] * len(pins))
        args: list[Any] = []
        for bcm in pins:
            args += [bcm, since, per_pin]
        with self.reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        for r in sorted(rows, key=lambda r: r[0]):
            result[r[2]].append(_committed(r))
        return result

