"""SQLite state: the last committed state of every pin, the audit log, and API tokens.

Durability is the point: an acknowledged change survives ``kill -9`` and a power cut, so a
relay never comes back in a state nobody asked for. Hence WAL with ``synchronous=FULL``
(every commit is fsynced) and a commit before anyone is told of a change.

An fsync takes milliseconds on an SD card, so it never runs on the event loop: one writer
thread owns the write connection and commits whatever has queued up in one transaction
(group commit). Thirty-two concurrent toggles cost one fsync, not thirty-two, and sequence
numbers are assigned in that single thread, so they grow without gaps in commit order.
Readers (history pages) use their own connection; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pinpanel.errors import StoreCorruptError, StoreError, StoreVersionError

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_NAME = "pinpanel.sqlite3"
#: Trim the audit log after this many commits (and at start-up).
TRIM_EVERY = 500
#: At most this many queued changes share one transaction.
BATCH_MAX = 256

MIGRATIONS: tuple[str, ...] = (
    # 1: pin states, audit history, tokens
    """
    CREATE TABLE pin_state (
        pin INTEGER PRIMARY KEY,
        state INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        changed_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        cause TEXT NOT NULL
    );
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        pin INTEGER NOT NULL,
        pin_id TEXT NOT NULL,
        old INTEGER,
        new INTEGER NOT NULL,
        cause TEXT NOT NULL,
        actor TEXT NOT NULL,
        client TEXT
    );
    CREATE INDEX history_pin_seq ON history (pin, seq);
    CREATE INDEX history_at ON history (at);
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def utc_now() -> str:
    """RFC 3339 UTC with milliseconds; fixed width, so text order is time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """A change about to be committed; the store gives it its sequence number."""

    pin: int
    pin_id: str
    old: bool | None
    new: bool
    cause: str
    actor: str
    client: str | None
    at: str


@dataclass(frozen=True, slots=True)
class Committed:
    """A change that is durably on disk, with its sequence number."""

    seq: int
    record: ChangeRecord


@dataclass(frozen=True, slots=True)
class PinRow:
    """The last committed state of one pin."""

    pin: int
    state: bool
    seq: int
    changed_at: str
    actor: str
    cause: str


@dataclass(frozen=True, slots=True)
class HistoryRow:
    seq: int
    at: str
    pin: int
    pin_id: str
    old: bool | None
    new: bool
    cause: str
    actor: str
    client: str | None

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "pin": self.pin, "id": self.pin_id,
                "old": self.old, "new": self.new, "cause": self.cause, "actor": self.actor,
                "client": self.client}


_Job = tuple[Sequence[ChangeRecord] | Callable[[sqlite3.Connection], Any],
             asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def check_integrity(path: Path) -> None:
    """Refuse a damaged or too-new database before anything writes to it.

    Opened read-only, so a corrupt file is left exactly as it was for the user to inspect
    or restore from a backup.
    """
    advice = (f"{path} is damaged ({{why}}). pinpanel will not start over it. Move it aside "
              "(or restore a backup made with sqlite3 .backup) and start again; a new, empty "
              "database is then created.")
    try:
        conn = _connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(advice.format(why=exc)) from exc
    finally:
        conn.close()
    if result != "ok":
        raise StoreCorruptError(advice.format(why=result))
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path} has schema version {version}, newer than this pinpanel knows "
            f"({SCHEMA_VERSION}). Upgrade pinpanel, or restore a backup made by this version."
        )


def prepare_data_dir(data_dir: Path) -> Path:
    """Create the data dir private to this user (tokens and history live there)."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create data directory {data_dir}: {exc.strerror}") from exc
    return data_dir / DB_NAME


class Store:
    """The state database. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, max_rows: int,
                 max_age_days: int) -> None:
        self.path = path
        self._conn = conn
        self._read = _connect(path)
        self._read_lock = threading.Lock()
        self._max_rows = max_rows
        self._max_age_days = max_age_days
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._since_trim = 0
        row = conn.execute(
            "SELECT max(s) FROM (SELECT max(seq) AS s FROM history "
            "UNION ALL SELECT max(seq) FROM pin_state)"
        ).fetchone()
        self.last_seq: int = row[0] or 0
        self._thread = threading.Thread(target=self._writer, name="pinpanel-store", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, data_dir: Path, *, max_rows: int = 100_000, max_age_days: int = 90) -> Store:
        """Open (creating or migrating) the database in ``data_dir``."""
        path = prepare_data_dir(data_dir)
        if path.exists():
            check_integrity(path)
        try:
            conn = _connect(path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
            with contextlib.suppress(OSError):
                path.chmod(0o600)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use {path}: {exc}") from exc
        store = cls(path, conn, max_rows=max_rows, max_age_days=max_age_days)
        store._trim()
        return store

    # -- the writer thread ---------------------------------------------------------------------

    def _writer(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < BATCH_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Job]) -> None:
        results: list[tuple[bool, Any]] = []
        seq = self.last_seq
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for work, _, _ in batch:
                if callable(work):
                    results.append((True, work(conn)))
                    continue
                done: list[Committed] = []
                for record in work:
                    seq += 1
                    conn.execute(
                        "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (seq, record.at, record.pin, record.pin_id, record.old, record.new,
                         record.cause, record.actor, record.client),
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO pin_state VALUES (?, ?, ?, ?, ?, ?)",
                        (record.pin, record.new, seq, record.at, record.actor, record.cause),
                    )
                    done.append(Committed(seq, record))
                results.append((True, done))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every waiter must hear of the failure
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            log.error("commit failed: %s", exc)
            error = StoreError(f"could not record the change durably: {exc}")
            for _, loop, future in batch:
                loop.call_soon_threadsafe(_settle, future, False, error)
            return
        self.last_seq = seq
        for (_, loop, future), (ok, value) in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, future, ok, value)
        self._since_trim += len(batch)
        if self._since_trim >= TRIM_EVERY:
            self._trim()

    def _trim(self) -> None:
        """Retention: keep at most ``max_rows`` rows and none older than ``max_age_days``."""
        self._since_trim = 0
        try:
            self._conn.execute(
                "DELETE FROM history WHERE seq <= "
                "(SELECT seq FROM history ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (self._max_rows,),
            )
            if self._max_age_days:
                cutoff = format_time(datetime.fromtimestamp(
                    time.time() - self._max_age_days * 86400, UTC))
                self._conn.execute("DELETE FROM history WHERE at < ?", (cutoff,))
        except sqlite3.Error:
            log.exception("trimming history failed")

    def _submit(self, work: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((work, loop, future))
        return future

    def commit(self, records: Sequence[ChangeRecord]) -> asyncio.Future[list[Committed]]:
        """Queue changes for one durable commit; the future resolves once fsynced.

        Futures resolve in commit order, so callbacks added right away run in ``seq`` order.
        """
        return self._submit(tuple(records))

    def write(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run another write (tokens, meta) on the writer thread, inside its transaction."""
        return self._submit(work)

    def write_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a write from outside the event loop (CLI, start-up); blocks until committed."""
        with self._read_lock:
            conn = self._read
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    # -- reads -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The read connection, for one short read (WAL: never blocks the writer)."""
        with self._read_lock:
            yield self._read

    def pin_rows(self) -> dict[int, PinRow]:
        with self.reading() as conn:
            rows = conn.execute("SELECT pin, state, seq, changed_at, actor, cause FROM pin_state")
            return {r[0]: PinRow(r[0], bool(r[1]), r[2], r[3], r[4], r[5]) for r in rows}

    def history(self, *, pins: Sequence[int] = (), since: str | None = None,
                until: str | None = None, before_seq: int | None = None,
                after_seq: int | None = None, limit: int = 100,
                newest_first: bool = True) -> list[HistoryRow]:
        """Audit rows matching the filters, newest first by default (cursor: ``before_seq``)."""
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
        sql = (f"SELECT seq, at, pin, pin_id, old, new, cause, actor, client FROM history "  # noqa: S608
               f"{where} ORDER BY seq {order} LIMIT ?")
        with self.reading() as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return [HistoryRow(r[0], r[1], r[2], r[3], None if r[4] is None else bool(r[4]),
                           bool(r[5]), r[6], r[7], r[8]) for r in rows]

    def state_before(self, pin: int, at: str) -> bool | None:
        """The pin's state just before ``at`` (for drawing a timeline's left edge)."""
        with self.reading() as conn:
            row = conn.execute("SELECT new FROM history WHERE pin = ? AND at < ? "
                               "ORDER BY seq DESC LIMIT 1", (pin, at)).fetchone()
        return None if row is None else bool(row[0])

    def close(self) -> None:
        """Finish queued commits, then close both connections."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        for conn in (self._read, self._conn):
            try:
                conn.close()
            except sqlite3.Error:
                log.exception("closing the database failed")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _migrate(conn: sqlite3.Connection) -> None:
    """Run the migrations this database has not seen yet, each in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreVersionError(f"schema version {version} is newer than {SCHEMA_VERSION}")
    for number in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("database migrated to schema %d", number + 1)


def open_path(data_dir: Path) -> Path:
    """Where the database of ``data_dir`` lives (for messages and the README)."""
    return data_dir / DB_NAME


__all__ = [
    "ChangeRecord", "Committed", "HistoryRow", "PinRow", "Store", "check_integrity",
    "format_time", "open_path", "utc_now",
]
