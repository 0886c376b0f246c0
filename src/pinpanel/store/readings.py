"""The readings database: observations kept cheaply on an SD card, in batches, with rollups.

Readings are not commands. A pin change is fsynced before anyone is told of it (see
:mod:`pinpanel.store`); a temperature is not worth an fsync each, so readings take their own
path: a separate file (``readings.sqlite3`` beside the state database) with its own writer
thread, so a batch never holds the state database's write lock and a command never waits
behind a batch. Readings queue in memory and are written in one transaction every
:data:`FLUSH_S` seconds or :data:`FLUSH_N` readings, whichever comes first.

What a power cut costs: the readings still in memory (at most one batch, ~10 s). The file
is WAL with ``synchronous=FULL``, so every batch that was written is on the card, and a cut
or ``kill -9`` never leaves it corrupt or loses an older batch.

Kept: raw readings for :data:`RAW_KEEP_S` (48 h); 1-minute min/avg/max rollups for 30 days;
1-hour rollups for 2 years. The rollups are folded in memory from every good read (also
those the deadband keeps out of the raw table, so their averages are exact), and upserted
once per bucket per batch. Each (sensor, reading) pair is a small integer ``series`` so a
raw row costs ~20 bytes, not the names over again.

The writer sleeps on a condition until there is something to write or a flush is due: an
idle sensor set costs no wake-ups here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinpanel.errors import StoreError

log = logging.getLogger(__name__)

DB_NAME = "readings.sqlite3"
FLUSH_S = 10.0
FLUSH_N = 100
RAW_KEEP_S = 48 * 3600
#: Rollup step (seconds) -> how long its buckets are kept.
ROLLUPS: dict[int, int] = {60: 30 * 86400, 3600: 730 * 86400}
#: Retention runs at most this often (by the store's clock).
PRUNE_EVERY_S = 600.0

#: The readings file's own schema version (``PRAGMA user_version``) and its tables: what a
#: backup checks before it keeps or restores the file.
SCHEMA_VERSION = 1
TABLES = frozenset({"series", "raw", "rollup"})
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    reading TEXT NOT NULL,
    UNIQUE (sensor, reading)
);
-- Keyed by time first: a batch's rows (every sensor's newest) land on the same last page,
-- so a commit rewrites one or two pages, not one per sensor (SD-card wear).
CREATE TABLE IF NOT EXISTS raw (
    t INTEGER NOT NULL,          -- Unix time in milliseconds
    series INTEGER NOT NULL,
    value REAL,                  -- NULL for an error reading
    error TEXT,
    PRIMARY KEY (t, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup (
    step INTEGER NOT NULL,       -- 60 or 3600
    bucket INTEGER NOT NULL,     -- Unix seconds, a multiple of step
    series INTEGER NOT NULL,
    n INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    PRIMARY KEY (step, bucket, series)
) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""
MINUTE, HOUR = 60, 3600


@dataclass(frozen=True, slots=True)
class RawPoint:
    at: float
    value: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Bucket:
    at: float  # start of the bucket, Unix seconds
    n: int
    min: float
    avg: float
    max: float


@dataclass(slots=True)
class _Agg:
    n: int
    min: float
    max: float
    sum: float

    def add(self, value: float) -> None:
        self.n += 1
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.sum += value

    def merge(self, other: _Agg) -> None:
        self.n += other.n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sum += other.sum


_Raw = tuple[str, str, int, float | None, str | None]
_AggKey = tuple[str, str, int]  # sensor, reading, minute bucket


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class ReadingStore:
    """Batched readings with rollups. :meth:`open` it; :meth:`close` flushes and stops."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time,
                 flush_s: float = FLUSH_S, flush_n: int = FLUSH_N) -> None:
        self.path = path
        self._clock = clock
        self._flush_s = flush_s
        self._flush_n = flush_n
        try:
            self._conn = _connect(path)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(SCHEMA)
            self._read = _connect(path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use the readings database {path}: {exc}. It holds "
                             "only readings: move it aside to start a new one.") from exc
        #: The read connection is shared by threads (``asyncio.to_thread``): one at a time.
        self._read_lock = threading.Lock()
        self._series: dict[tuple[str, str], int] = dict(
            ((s, r), i) for i, s, r in self._conn.execute("SELECT id, sensor, reading FROM series"))
        # The first hour whose 1-hour bucket is not made yet (see _write).
        row = self._conn.execute("SELECT max(bucket) FROM rollup WHERE step = 3600").fetchone()
        first = self._conn.execute("SELECT min(bucket) FROM rollup WHERE step = 60").fetchone()
        self._rolled_until: int = (row[0] + HOUR if row[0] is not None
                                   else first[0] // HOUR * HOUR if first[0] is not None
                                   else int(clock() // HOUR) * HOUR)
        self._cond = threading.Condition()
        self._pending: list[_Raw] = []
        self._inflight: list[_Raw] = []
        self._inflight_agg: dict[_AggKey, _Agg] = {}
        #: The write connection is the writer thread's; prune() from a test takes it too.
        self._write_lock = threading.Lock()
        self._agg: dict[_AggKey, _Agg] = {}
        self._due: float | None = None  # monotonic time the pending batch must be written by
        self._requested = 0
        self._written = 0
        self._closing = False
        self._last_prune = -math.inf
        #: Batches written and rows in them since opening (for the bench and /metrics).
        self.batches = 0
        self.rows_written = 0
        #: Called on the writer thread after each batch is durable, with its raw row count.
        self.on_batch: Callable[[int], None] | None = None
        self._thread = threading.Thread(target=self._writer, name="pinpanel-readings",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, data_dir: Path, **kwargs: object) -> ReadingStore:
        """Open (creating) ``readings.sqlite3`` in ``data_dir`` (which the state store made)."""
        path = data_dir / DB_NAME
        if not path.exists():
            with contextlib.suppress(OSError):
                path.touch(mode=0o600)
        return cls(path, **kwargs)  # type: ignore[arg-type]

    # -- writing (any thread; the sampler calls from the event loop) -------------------------

    def add(self, sensor: str, reading: str, at: float, value: float | None,
            error: str | None = None) -> None:
        """Queue one raw reading (a value, or an error with ``value`` None)."""
        with self._cond:
            self._pending.append((sensor, reading, round(at * 1000), value, error))
            if self._due is None:
                self._due = time.monotonic() + self._flush_s
            if len(self._pending) >= self._flush_n or len(self._pending) == 1:
                self._cond.notify()

    def observe(self, sensor: str, reading: str, at: float, value: float) -> None:
        """Fold one good read into its 1-minute bucket (written once the minute is over)."""
        key = (sensor, reading, int(at // MINUTE) * MINUTE)
        with self._cond:
            agg = self._agg.get(key)
            if agg is not None:
                agg.add(value)
                return
            self._agg[key] = _Agg(1, value, value, value)
            if self._due is None:  # a new minute: the last one waits to be written
                self._due = time.monotonic() + self._flush_s
                self._cond.notify()

    def flush(self, timeout: float = 30.0) -> None:
        """Write what is queued now and wait until it is on disk (shutdown, tests)."""
        with self._cond:
            if self._closing:
                return  # close() writes the last batch itself
            self._requested += 1
            wanted = self._requested
            self._cond.notify()
            if not self._cond.wait_for(lambda: self._written >= wanted, timeout):
                raise StoreError("the readings writer did not finish a batch in time")

    def close(self) -> None:
        """Write the last batch and stop the writer; idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
        for conn in (self._conn, self._read):
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._closing and self._requested == self._written:
                    if len(self._pending) >= self._flush_n:
                        break
                    if self._due is not None:
                        wait = self._due - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                requested, closing = self._requested, self._closing
                batch, self._pending, self._due = self._pending, [], None
                open_minute = int(self._clock() // MINUTE) * MINUTE
                agg = {k: a for k, a in self._agg.items() if closing or k[2] < open_minute}
                for key in agg:
                    del self._agg[key]
                # Still answered by queries while they are on their way to the disk.
                self._inflight, self._inflight_agg = batch, agg
            try:
                if batch or agg or closing:
                    self._write(batch, agg, closing)
                now = self._clock()
                if now - self._last_prune >= PRUNE_EVERY_S:
                    self.prune(now)
            except sqlite3.Error:
                log.exception("writing %d readings failed; they are lost", len(batch))
            with self._cond:
                self._inflight, self._inflight_agg = [], {}
                self._written = requested
                self._cond.notify_all()
            if closing:
                return

    def _series_id(self, sensor: str, reading: str) -> int:
        key = (sensor, reading)
        found = self._series.get(key)
        if found is None:
            self._conn.execute("INSERT OR IGNORE INTO series (sensor, reading) VALUES (?, ?)",
                               key)
            found = self._conn.execute("SELECT id FROM series WHERE sensor = ? AND reading = ?",
                                       key).fetchone()[0]
            self._series[key] = found
        return found

    def _write(self, batch: list[_Raw], agg: dict[_AggKey, _Agg], closing: bool = False,
               ) -> None:
        with self._write_lock:
            self._write_locked(batch, agg, closing)

    def _write_locked(self, batch: list[_Raw], agg: dict[_AggKey, _Agg], closing: bool,
                      ) -> None:
        """One transaction: the raw rows, the finished minutes, the hours they finish."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            raw: list[tuple[int, int, float | None, str | None]] = [
                (t, self._series_id(s, r), v, e) for s, r, t, v, e in batch]
            raw.sort(key=lambda row: (row[0], row[1]))
            minutes: list[tuple[int, int, int, float, float, float]] = [
                (bucket, self._series_id(s, r), a.n, a.min, a.max, a.sum)
                for (s, r, bucket), a in agg.items()]
            minutes.sort(key=lambda row: (row[0], row[1]))
            conn.executemany(
                "INSERT OR REPLACE INTO raw (t, series, value, error) VALUES (?, ?, ?, ?)", raw)
            # A minute written again (its last seconds came after a restart) is merged.
            conn.executemany(
                "INSERT INTO rollup (step, bucket, series, n, min, max, sum) "
                "VALUES (60, ?, ?, ?, ?, ?, ?) ON CONFLICT (step, bucket, series) DO UPDATE SET "
                "n = n + excluded.n, min = min(min, excluded.min), "
                "max = max(max, excluded.max), sum = sum + excluded.sum", minutes)
            # Hours are rolled up once they are over (and a finished hour again when a late
            # minute of it arrives, after a restart); the open hour is folded at query time.
            open_hour = int(self._clock() // HOUR) * HOUR
            hours = {bucket // HOUR * HOUR for _, _, bucket in agg
                     if bucket < self._rolled_until}
            if closing:
                open_hour += HOUR  # the last word before a stop: the open hour too
            self._roll_hours(hours | self._finished_hours(open_hour))
            conn.execute("COMMIT")
            self._rolled_until = max(self._rolled_until, open_hour)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.batches += 1
        self.rows_written += len(batch) + len(agg)
        if self.on_batch is not None:
            self.on_batch(len(batch))

    def _finished_hours(self, open_hour: int) -> set[int]:
        """Hours before ``open_hour`` with minutes but no 1-hour bucket made yet."""
        if open_hour <= self._rolled_until:
            return set()
        return {h for (h,) in self._conn.execute(
            "SELECT DISTINCT bucket / 3600 * 3600 FROM rollup WHERE step = 60 AND "
            "bucket >= ? AND bucket < ?", (self._rolled_until, open_hour))}

    def _roll_hours(self, hours: set[int]) -> None:
        """(Re)make the 1-hour buckets of ``hours`` from their minutes: exact, idempotent."""
        for hour in sorted(hours):
            self._conn.execute(
                "INSERT OR REPLACE INTO rollup (step, bucket, series, n, min, max, sum) "
                "SELECT 3600, ?, series, sum(n), min(min), max(max), sum(sum) FROM rollup "
                "WHERE step = 60 AND bucket >= ? AND bucket < ? GROUP BY series",
                (hour, hour, hour + HOUR))

    def prune(self, now: float | None = None) -> None:
        """Drop raw readings past 48 h and rollups past their keep (writer thread, tests)."""
        with self._write_lock:
            self._prune_locked(self._clock() if now is None else now)

    def _prune_locked(self, now: float) -> None:
        self._last_prune = now
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Minutes about to go are in their hours first (after a crash, or a long stop).
            open_hour = int(now // HOUR) * HOUR
            self._roll_hours(self._finished_hours(open_hour))
            self._rolled_until = max(self._rolled_until, open_hour)
            conn.execute("DELETE FROM raw WHERE t < ?", (round((now - RAW_KEEP_S) * 1000),))
            for step, keep in ROLLUPS.items():
                conn.execute("DELETE FROM rollup WHERE step = ? AND bucket + ? <= ?",
                             (step, step, now - keep))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reading (the event loop's callers; a short read on its own connection) ---------------

    def _q(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            rows: list[tuple[Any, ...]] = self._read.execute(sql, args).fetchall()
            return rows

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        rows = self._q(sql, args)
        return rows[0] if rows else None

    def _lookup(self, sensor: str, reading: str) -> int | None:
        row = self._one("SELECT id FROM series WHERE sensor = ? AND reading = ?",
                                 (sensor, reading))
        return None if row is None else int(row[0])

    def last_value(self, sensor: str, reading: str) -> float | None:
        """The newest stored value of a series (a counter's total carries over a restart)."""
        series = self._lookup(sensor, reading)
        if series is None:
            return None
        row = self._one("SELECT value FROM raw WHERE series = ? AND value IS NOT NULL "
                        "ORDER BY t DESC LIMIT 1", (series,))
        if row is None:  # older than the raw keep: the newest bucket's last word
            row = self._one("SELECT max FROM rollup WHERE series = ? "
                            "ORDER BY bucket DESC, step LIMIT 1", (series,))
        return None if row is None else float(row[0])

    def raw(self, sensor: str, reading: str, since: float, until: float,
            limit: int = 100_000) -> list[RawPoint]:
        """Raw readings in ``[since, until)``, oldest first, the unwritten batch included."""
        points: dict[int, RawPoint] = {}
        series = self._lookup(sensor, reading)
        lo, hi = round(since * 1000), round(until * 1000)
        if series is not None:
            for t, v, e in self._q(
                    "SELECT t, value, error FROM raw WHERE t >= ? AND t < ? AND series = ? "
                    "ORDER BY t LIMIT ?", (lo, hi, series, limit)):
                points[t] = RawPoint(t / 1000, v, e)
        with self._cond:
            pending = [p for p in (*self._inflight, *self._pending)
                       if p[0] == sensor and p[1] == reading]
        for _, _, t, v, e in pending:
            if lo <= t < hi:
                points[t] = RawPoint(t / 1000, v, e)
        return [points[t] for t in sorted(points)][:limit]

    def buckets(self, sensor: str, reading: str, since: float, until: float,
                step: int) -> tuple[str, list[Bucket]]:
        """min/avg/max per ``step`` seconds, whole buckets, oldest first.

        Served from :meth:`source_for`'s table, with what is not written yet (the open
        minute, an hour not rolled up yet) folded in, so the answer is exact and current.
        """
        source = self.source_for(since, step)
        aggs: dict[int, _Agg] = {}

        def fold(at: float, agg: _Agg) -> None:
            key = int(at // step) * step
            if key in aggs:
                aggs[key].merge(agg)
            else:
                aggs[key] = _Agg(agg.n, agg.min, agg.max, agg.sum)

        if source == 0:
            for point in self.raw(sensor, reading, since, until):
                if point.value is not None:
                    fold(point.at, _Agg(1, point.value, point.value, point.value))
        else:
            series = self._lookup(sensor, reading)
            start = int(since // source) * source
            # The hours not rolled up yet come from their minutes.
            ranges = ([(MINUTE, start, until)] if source == MINUTE else
                      [(HOUR, start, min(until, self._rolled_until)),
                       (MINUTE, max(start, self._rolled_until), until)])
            for table_step, lo_bucket, hi_bucket in ranges:
                if series is None or lo_bucket >= hi_bucket:
                    continue
                for bucket, n, lo, hi, total in self._q(
                        "SELECT bucket, n, min, max, sum FROM rollup WHERE step = ? AND "
                        "bucket >= ? AND bucket < ? AND series = ? ORDER BY bucket",
                        (table_step, lo_bucket, hi_bucket, series)):
                    fold(bucket, _Agg(n, lo, hi, total))
            with self._cond:
                pending = [(k[2], _Agg(a.n, a.min, a.max, a.sum))
                           for k, a in (*self._inflight_agg.items(), *self._agg.items())
                           if k[0] == sensor and k[1] == reading]
            for minute, agg in pending:
                if start <= minute < until:
                    fold(minute, agg)
        name = {0: "raw", 60: "1m", 3600: "1h"}[source]
        return name, [Bucket(float(k), a.n, a.min, a.sum / a.n, a.max)
                      for k, a in sorted(aggs.items())]

    def source_for(self, since: float, step: int) -> int:
        """The table a ``step``-second query from ``since`` is served from (0: raw).

        A rollup serves it when its bucket divides ``step`` (so each answer bucket is made of
        whole rollup buckets, and exact); of those, the coarsest that still keeps data from
        ``since`` is the cheapest; when none keeps that far back, the one that keeps longest.
        A step that no rollup divides is folded from the raw table.
        """
        dividing = [s for s in ROLLUPS if step > 0 and step % s == 0]
        if not dividing:
            return 0
        now = self._clock()
        covering = [s for s in dividing if since >= now - ROLLUPS[s]]
        return max(covering) if covering else max(dividing, key=lambda s: ROLLUPS[s])

    def counts(self) -> dict[str, int]:
        """Rows per table (the bench and tests)."""
        return {table: self._q(f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608
                for table in ("raw", "rollup", "series")}

    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(
            self.path.name + "-wal")) if p.exists())

