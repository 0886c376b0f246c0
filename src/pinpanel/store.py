"""SQLite state: the last committed state of every pin, the audit log, and API tokens.

Durability is the point: an acknowledged change survives ``kill -9`` and a power cut, so a
relay never comes back in a state nobody asked for. Hence WAL with ``synchronous=FULL``
(every commit is fsynced) and a commit before anyone is told of a change.

An fsync takes milliseconds on an SD card, so it never runs on the event loop: one writer
thread owns the write connection and commits whatever has queued up in one transaction
(group commit). Thirty-two concurrent toggles cost one fsync, not thirty-two, and sequence
numbers are assigned in that single thread, so they grow without gaps in commit order.
Readers (history pages) use their own connection; WAL lets them run beside the writer.

A damaged file is never opened for writing: :func:`check_integrity` looks at it read-only
first, so the file stays exactly as it was for the user to inspect or restore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pinpanel.changes import Actor, ChangeRecord, Committed, format_time
from pinpanel.errors import (
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    TokenExistsError,
    TokenNotFoundError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_NAME = "pinpanel.sqlite3"
#: Retention runs at least this often (in committed changes), and at start-up.
TRIM_EVERY = 500
#: At most this many queued jobs share one transaction.
BATCH_MAX = 256
SQLITE_MAGIC = b"SQLite format 3\x00"
#: The meta row every token or session change increments (keyrings watch it).
AUTH_GENERATION_KEY = "auth_generation"

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
    # 2: browser sessions (only the hash of the session id; see pinpanel.auth)
    """
    CREATE TABLE sessions (
        hash TEXT PRIMARY KEY,
        token_name TEXT NOT NULL REFERENCES tokens (name) ON DELETE CASCADE,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX sessions_token ON sessions (token_name);
    """,
    # 3: pwm levels and servo angles beside the on/off state (NULL on older rows and on
    # plain pins, which keeps every older row readable as it was)
    """
    ALTER TABLE history ADD COLUMN old_level REAL;
    ALTER TABLE history ADD COLUMN new_level REAL;
    ALTER TABLE history ADD COLUMN old_angle REAL;
    ALTER TABLE history ADD COLUMN new_angle REAL;
    ALTER TABLE pin_state ADD COLUMN level REAL;
    ALTER TABLE pin_state ADD COLUMN angle REAL;
    """,
    # 4: automation: schedules and rules made over the API (spec NULL: one from the config
    # file, the row only says whether it is enabled), an audit row per edit, and the
    # notifications outbox (a row until it is sent or given up on)
    """
    CREATE TABLE automation (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        spec TEXT,
        enabled INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE TABLE automation_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        item TEXT NOT NULL,
        action TEXT NOT NULL,
        spec TEXT
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        target TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_error TEXT
    );
    """,
    # 5: limited tokens and guest links: the pins and actions a token may use (JSON, NULL:
    # all), when it stops working (unix time, NULL: until revoked), and what it is
    """
    ALTER TABLE tokens ADD COLUMN grants TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at REAL;
    ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'token';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
_ROW_COLUMNS = ("seq, at, pin, pin_id, old, new, cause, actor, client, "
                "old_level, new_level, old_angle, new_angle")


def _committed(r: Sequence[Any]) -> Committed:
    """A row of :data:`_ROW_COLUMNS` as the committed change it records."""
    return Committed(r[2], r[3], None if r[4] is None else bool(r[4]), bool(r[5]),
                     Actor(r[7], r[6], r[8]), r[1], r[0], old_level=r[9], new_level=r[10],
                     old_angle=r[11], new_angle=r[12])


@dataclass(slots=True)
class _Job:
    """One unit of work for the writer thread and the future that hears how it went."""

    work: tuple[ChangeRecord, ...] | Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | None


def _connect(path: Path, *, readonly: bool = False, immutable: bool = False,
             ) -> sqlite3.Connection:
    query = "?mode=ro" + ("&immutable=1" if immutable else "") if readonly else ""
    conn = sqlite3.connect(f"file:{path}{query}", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def check_integrity(path: Path) -> None:
    """Refuse a damaged, unreadable or too-new database before anything writes to it.

    Nothing here writes: the header is read as plain bytes, then SQLite opens the file
    read-only (and ``immutable`` when there is no write-ahead log to read, so not even a
    ``-shm`` file appears beside it). A corrupt file is left byte for byte as it was, for
    the user to inspect or to replace with a backup.
    """
    advice = (f"the state database {path} is damaged ({{why}}). pinpanel will not start "
              f"over it, because that would lose the pins' states and history. Move it aside "
              f"(mv {path} {path}.damaged) or restore a backup with pinpanel restore FILE, "
              f"then start again; a new, empty database is created if none is there.")
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory, not the state database; move it aside "
                         "or choose another --data-dir") from None
    except OSError as exc:
        raise StoreError(f"cannot read the state database {path}: {exc.strerror}. Run "
                         "pinpanel as the user that owns it, or fix its owner and "
                         "permissions (chmod 600).") from exc
    if not header:
        return  # an empty file holds nothing to lose: SQLite initialises it
    if not header.startswith(SQLITE_MAGIC) or len(header) < 100:
        raise StoreCorruptError(advice.format(why="not an SQLite database"))
    has_wal = path.with_name(path.name + "-wal").exists()
    try:
        conn = _connect(path, readonly=True, immutable=not has_wal)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the state database {path}: {exc}") from exc
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
            f"the state database {path} has schema version {version}, newer than this "
            f"pinpanel knows ({SCHEMA_VERSION}): it was written by a newer pinpanel. "
            "Upgrade pinpanel, or restore a backup made by this version."
        )


@dataclass(frozen=True, slots=True)
class DatabaseKind:
    """What a file must be to pass as one of pinpanel's databases (backups check it)."""

    label: str
    newest: int
    tables: frozenset[str]


STATE_DATABASE = DatabaseKind("a pinpanel state database", SCHEMA_VERSION,
                              frozenset({"pin_state", "history", "tokens", "meta"}))


def snapshot(path: Path, kind: DatabaseKind = STATE_DATABASE) -> bytes:
    """A consistent image of the database at ``path``, also while a server writes to it.

    SQLite's online backup API copies the pages inside one read transaction, so the image is
    one committed state, the changes still in ``-wal`` included, and the server's writer is
    never blocked (WAL). Copying the file itself could miss what is in ``-wal`` or catch a
    page mid-write. The copy goes to memory and leaves as one serialized image: no temporary
    file is made beside the live one. The image is checked (:func:`verify_image`) so that a
    damaged database is refused here instead of being saved as a backup that cannot restore.
    """
    # Not read-only: a WAL database with no server running has no -shm, which a read-only
    # connection cannot create. The backup only reads; SQLite tidies its -wal up at close.
    try:
        source = _connect(path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    copy = sqlite3.connect(":memory:")
    try:
        source.backup(copy)
        image = bytearray(copy.serialize())
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"cannot back up {path}: {exc}") from exc
    finally:
        copy.close()
        source.close()
    if image[:16] == SQLITE_MAGIC:
        # Header bytes 18 and 19 still say WAL (2), which an image in memory cannot use;
        # 1 is the rollback journal. The server sets WAL again when it opens the restore.
        image[18:20] = b"\x01\x01"
    verify_image(bytes(image), str(path), kind)
    return bytes(image)


def verify_image(image: bytes, what: str, kind: DatabaseKind = STATE_DATABASE) -> int:
    """``PRAGMA integrity_check`` and the schema version of a serialized database image.

    Returns the schema version; StoreCorruptError if any check fails, StoreVersionError if
    a newer pinpanel wrote it.
    """
    conn = sqlite3.connect(":memory:")
    try:
        try:
            conn.deserialize(image)
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(f"{what} is not an SQLite database: {exc}") from exc
        return _verify(conn, what, kind)
    finally:
        conn.close()


def verify_file(path: Path, kind: DatabaseKind = STATE_DATABASE) -> int:
    """:func:`verify_image` for a file nothing else has open (a restore being staged)."""
    try:
        conn = _connect(path, readonly=True, immutable=True)
    except sqlite3.Error as exc:
        raise StoreCorruptError(f"cannot open {path}: {exc}") from exc
    try:
        return _verify(conn, str(path), kind)
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection, what: str, kind: DatabaseKind = STATE_DATABASE) -> int:
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"{what} is damaged: {exc}") from exc
    if problems != ["ok"]:
        raise StoreCorruptError(f"{what} fails PRAGMA integrity_check: "
                                + "; ".join(problems[:5]))
    if version > kind.newest:
        raise StoreVersionError(f"{what} has schema version {version}, newer than this "
                                f"pinpanel knows ({kind.newest}): upgrade pinpanel first")
    if version < 1 or not kind.tables <= tables:
        raise StoreCorruptError(f"{what} is not {kind.label}")
    return version


def prepare_data_dir(data_dir: Path) -> Path:
    """Create the data dir private to this user (tokens and history live there)."""
    existed = data_dir.is_dir()
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not existed:
            data_dir.chmod(0o700)  # whatever the umask said
    except OSError as exc:
        raise StoreError(f"cannot create data directory {data_dir}: {exc.strerror}") from exc
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        log.warning("data directory %s is readable by others (mode %o); chmod 700 it",
                    data_dir, mode)
    return data_dir / DB_NAME


def _create_private(path: Path) -> None:
    """Create the database file as 0600 before SQLite does (it would use 0644 & umask)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the state database {path}: {exc.strerror}") from exc
    os.close(fd)


class Store:
    """The state database. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, max_rows: int,
                 max_age_days: int) -> None:
        self.path = path
        self._conn = conn
        self._read = _connect(path)
        _durable(self._read)
        self._read_lock = threading.Lock()
        self._max_rows = max_rows
        self._max_age_days = max_age_days
        # Trim often enough that the table never holds more than ~10% over max_rows.
        self._trim_every = max(1, min(TRIM_EVERY, max_rows // 10))
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._commit_observers: list[Callable[[float], None]] = []
        self.last_seq: int = _stored_last_seq(conn)
        self._trimmed_at = self.last_seq
        self._trim()
        self._thread = threading.Thread(target=self._writer, name="pinpanel-store", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, data_dir: Path, *, max_rows: int = 100_000, max_age_days: int = 90) -> Store:
        """Open (creating or migrating) the database in ``data_dir``."""
        path = prepare_data_dir(data_dir)
        if path.exists():
            check_integrity(path)
        _create_private(path)
        try:
            conn = _connect(path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                log.warning("%s: WAL not available (journal mode %s); still durable, slower",
                            path, mode)
            _durable(conn)
            _migrate(conn)
            with contextlib.suppress(OSError):
                path.chmod(0o600)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use the state database {path}: {exc}") from exc
        return cls(path, conn, max_rows=max_rows, max_age_days=max_age_days)

    def add_commit_observer(self, observer: Callable[[float], None]) -> None:
        """Call ``observer`` with each transaction's seconds (metrics), on the writer thread.

        It must not block: the next batch waits for it.
        """
        self._commit_observers.append(observer)

    # -- the writer thread ---------------------------------------------------------------------

    def _writer(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < BATCH_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True  # finish this batch, then stop
                    break
                batch.append(more)
            try:
                self._run_batch(batch)
            except Exception:  # the writer must outlive any one batch
                log.exception("the store's writer failed a batch")
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        """Commit every job of ``batch`` in one transaction, then tell each its outcome.

        A pin change fails only with the whole transaction (nothing of it is on disk). Other
        work (tokens, meta) runs inside its own savepoint, so its own error (a duplicate
        token name) goes to its caller alone and never undoes the pin changes beside it.
        """
        started = time.perf_counter()
        for attempt in range(2):
            try:
                outcomes, seq = self._transaction(batch)
                break
            except Exception as exc:  # noqa: BLE001 - every waiter must hear of the failure
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if attempt == 0 and _is_seq_conflict(exc):
                    # Another process wrote history rows behind this writer's back (a
                    # second server before the data-dir lock, `serve --get`): re-read the
                    # position and retry once, instead of failing every later change.
                    with contextlib.suppress(sqlite3.Error):
                        stored = _stored_last_seq(self._conn)
                        log.warning("another process wrote changes up to seq %d; "
                                    "continuing after it", stored)
                        self.last_seq = max(self.last_seq, stored)
                        continue
                log.error("commit failed: %s", exc)
                error = StoreError(f"could not record the change durably: {exc}")
                _tell(batch, [(False, error)] * len(batch))
                return
        self.last_seq = seq
        elapsed = time.perf_counter() - started
        _tell(batch, outcomes)
        for observer in self._commit_observers:
            try:  # after the waiters are told: a failing observer must not strand them
                observer(elapsed)
            except Exception:
                log.exception("a commit observer failed")
        if self.last_seq - self._trimmed_at >= self._trim_every:
            self._trim()

    def _transaction(self, batch: list[_Job]) -> tuple[list[tuple[bool, Any]], int]:
        """One try at committing ``batch``: each job's outcome, and the last seq given out."""
        outcomes: list[tuple[bool, Any]] = []
        seq = self.last_seq
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        for job in batch:
            if callable(job.work):
                outcomes.append(self._run_own(conn, job.work))
                continue
            done: list[Committed] = []
            for record in job.work:
                seq += 1
                conn.execute(
                    f"INSERT INTO history ({_ROW_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, record.at, record.pin, record.pin_id, record.old, record.new,
                     record.actor.cause, record.actor.name, record.actor.client,
                     record.old_level, record.new_level, record.old_angle, record.new_angle),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO pin_state (pin, state, seq, changed_at, actor, "
                    "cause, level, angle) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.pin, record.new, seq, record.at, record.actor.name,
                     record.actor.cause, record.new_level, record.new_angle),
                )
                done.append(record.committed(seq))
            outcomes.append((True, done))
        if not conn.in_transaction:
            # SQLite rolls back by itself on some errors (disk full, I/O); a COMMIT now
            # would "succeed" with nothing in it.
            raise sqlite3.OperationalError("the transaction was rolled back by SQLite")
        conn.execute("COMMIT")  # synchronous=FULL: returns after the fsync
        return outcomes, seq

    @staticmethod
    def _run_own(conn: sqlite3.Connection,
                 work: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT job")
        try:
            value = work(conn)
        except Exception as exc:  # handed to the job's own caller
            if not conn.in_transaction:
                raise  # the whole transaction is gone: fail the batch
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return False, exc
        conn.execute("RELEASE job")
        return True, value

    def _trim(self) -> None:
        """Retention: keep at most ``max_rows`` rows and none older than ``max_age_days``.

        Sequence numbers have no gaps, so "the newest max_rows rows" is a seq range and the
        delete needs no scan. Runs on the writer thread (or before it starts).
        """
        self._trimmed_at = self.last_seq
        try:
            self._conn.execute("DELETE FROM history WHERE seq <= ?",
                               (self.last_seq - self._max_rows,))
            if self._max_age_days:
                cutoff = format_time(datetime.fromtimestamp(
                    time.time() - self._max_age_days * 86400, UTC))
                self._conn.execute("DELETE FROM history WHERE at < ?", (cutoff,))
        except sqlite3.Error:
            log.exception("trimming history failed")

    def _submit(self, work: Any) -> asyncio.Future[Any]:
        if self._closed:
            raise StoreError(f"the state database {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(work, loop, future))
        return future

    def commit(self, records: Sequence[ChangeRecord]) -> asyncio.Future[list[Committed]]:
        """Queue changes for one durable commit; the future resolves once fsynced.

        Futures resolve in commit order, so callbacks added right away run in ``seq`` order.
        """
        return self._submit(tuple(records))

    def write(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run another write (tokens, meta) on the writer thread, inside its transaction.

        ``work`` runs in a savepoint: if it raises, only its own changes are undone and the
        future carries its exception.
        """
        return self._submit(work)

    def trim(self) -> asyncio.Future[None]:
        """Apply retention now, on the writer thread (it also runs by itself)."""

        def run(conn: sqlite3.Connection) -> None:
            self._trim()

        return self._submit(run)

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

    # -- meta: small named records the adapters keep (MQTT: what discovery last published) --

    def read_meta(self, key: str) -> str | None:
        """The record stored under ``key``, or None when there is none."""
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def write_meta(self, key: str, value: str) -> asyncio.Future[None]:
        """Store ``value`` under ``key`` (replacing it), durably, on the writer thread."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

        return self._submit(work)

    # -- automation: API-made schedules and rules, their audit, the notifications outbox ----

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

    # -- tokens and sessions: the SQL behind pinpanel.auth (only hashes are stored) ----------

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: moves when another connection commits.

        A counter in shared memory, no disk read: cheap enough to ask on every request.
        """
        with self.reading() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def auth_generation(self) -> str:
        """The counter every token or session change increments (see :func:`_bump_auth`)."""
        return self.read_meta(AUTH_GENERATION_KEY) or "0"

    def auth_rows(self, now: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Every token as (hash, name, scope, grants, expires_at, kind) and every live
        session as (hash, then its token's name, scope, grants, expires_at and kind, then
        the session's expires), read together for the keyring's cache."""
        with self.reading() as conn:
            tokens = conn.execute("SELECT hash, name, scope, grants, expires_at, kind "
                                  "FROM tokens").fetchall()
            sessions = conn.execute(
                "SELECT s.hash, t.name, t.scope, t.grants, t.expires_at, t.kind, s.expires "
                "FROM sessions s JOIN tokens t ON t.name = s.token_name WHERE s.expires > ?",
                (now,)).fetchall()
        return tokens, sessions

    def token_list(self) -> list[tuple[Any, ...]]:
        """(name, scope, created_at, last_used_at, grants, expires_at, kind) of every
        token and guest link, by name."""
        with self.reading() as conn:
            return conn.execute("SELECT name, scope, created_at, last_used_at, grants, "
                                "expires_at, kind FROM tokens ORDER BY name").fetchall()

    def unused_token(self, hashed: str) -> str | None:
        """The name of the token with this hash if it was never used, else None."""
        with self.reading() as conn:
            row = conn.execute("SELECT name FROM tokens WHERE hash = ? AND last_used_at IS NULL",
                               (hashed,)).fetchone()
        return None if row is None else str(row[0])

    def write_meta_sync(self, key: str, value: str) -> None:
        """:meth:`write_meta` from outside the event loop (CLI, start-up)."""
        self.write_sync(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)))

    def add_token(self, name: str, scope: str, hashed: str, created_at: str, *,
                  grants: str | None = None, expires_at: float | None = None,
                  kind: str = "token") -> asyncio.Future[None]:
        """Record a new token or guest link (a running server: on the writer thread)."""
        return self._submit(_insert_token(name, scope, hashed, created_at, grants,
                                          expires_at, kind))

    def add_token_sync(self, name: str, scope: str, hashed: str, created_at: str, *,
                       grants: str | None = None, expires_at: float | None = None,
                       kind: str = "token") -> None:
        """:meth:`add_token` from outside the event loop (CLI, start-up)."""
        self.write_sync(_insert_token(name, scope, hashed, created_at, grants, expires_at,
                                      kind))

    def remove_token(self, name: str, kind: str | None = None) -> asyncio.Future[None]:
        """Delete a token (of ``kind``, if given) and its sessions; TokenNotFoundError if
        there is none."""
        return self._submit(_delete_token(name, kind))

    def remove_token_sync(self, name: str) -> None:
        self.write_sync(_delete_token(name))

    def touch_token(self, name: str, stamp: str) -> asyncio.Future[None]:
        """Note when a token was last used (not a credential change: no generation bump)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE tokens SET last_used_at = ? WHERE name = ?", (stamp, name))

        return self._submit(work)

    def add_session(self, hashed: str, token_name: str, now: float, expires: float,
                    ) -> asyncio.Future[None]:
        """Record a browser session (and drop the expired ones while at it)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            conn.execute("INSERT INTO sessions (hash, token_name, created, expires) "
                         "VALUES (?, ?, ?, ?)", (hashed, token_name, now, expires))
            _bump_auth(conn)

        return self._submit(work)

    def remove_session(self, hashed: str) -> asyncio.Future[None]:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE hash = ?", (hashed,))
            _bump_auth(conn)

        return self._submit(work)

    def close(self) -> None:
        """Finish queued commits, then close both connections."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.error("the store's writer did not finish; closing anyway")
            return  # closing its connection under it could lose the commit it is doing
        for conn in (self._read, self._conn):
            try:
                conn.close()
            except sqlite3.Error:
                log.exception("closing the database failed")


def _durable(conn: sqlite3.Connection) -> None:
    """Every commit on this connection is fsynced before COMMIT returns."""
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _stored_last_seq(conn: sqlite3.Connection) -> int:
    """The newest sequence number on disk.

    Every change also updates pin_state in the same transaction, so the newest seq survives
    there even when retention has trimmed every history row: never reused.
    """
    row = conn.execute("SELECT max(s) FROM (SELECT max(seq) AS s FROM history "
                       "UNION ALL SELECT max(seq) FROM pin_state)").fetchone()
    return int(row[0] or 0)


def _is_seq_conflict(exc: Exception) -> bool:
    """A history row with this seq exists already: someone else gave it out."""
    return isinstance(exc, sqlite3.IntegrityError) and "history.seq" in str(exc)


def _bump_auth(conn: sqlite3.Connection) -> None:
    """Tell every keyring (this process or another) that tokens or sessions changed."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE "
                 "SET value = CAST(value AS INTEGER) + 1", (AUTH_GENERATION_KEY,))


def _insert_token(name: str, scope: str, hashed: str, created_at: str, grants: str | None,
                  expires_at: float | None, kind: str) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
            raise TokenExistsError(f"a token or guest link named {name!r} already exists "
                                   "(revoke it first, or pick another name)")
        conn.execute("INSERT INTO tokens (name, hash, scope, created_at, grants, expires_at, "
                     "kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (name, hashed, scope, created_at, grants, expires_at, kind))
        _bump_auth(conn)
    return work


def _delete_token(name: str, kind: str | None = None) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        found = conn.execute("SELECT kind FROM tokens WHERE name = ?", (name,)).fetchone()
        if found is None or (kind is not None and found[0] != kind):
            what = "guest link" if kind == "guest" else "token"
            raise TokenNotFoundError(f"no {what} named {name!r}")
        conn.execute("DELETE FROM sessions WHERE token_name = ?", (name,))
        conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        _bump_auth(conn)
    return work


def _tell(batch: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
    """Settle a batch's futures on their loops, from the writer thread, in batch order.

    One wake-up per loop per batch, not one per job: under load a batch holds several
    changes, and every ``call_soon_threadsafe`` costs the loop a self-pipe write and read.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for job, (ok, value) in zip(batch, outcomes, strict=True):
        if job.loop is not None and job.future is not None:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _migrate(conn: sqlite3.Connection) -> None:
    """Run the migrations this database has not seen yet, each in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreVersionError(f"schema version {version} is newer than {SCHEMA_VERSION}")
    for number in range(version, len(MIGRATIONS)):
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
        if version:  # a brand-new database is created, not migrated: nothing to say
            log.info("database migrated to schema %d", number + 1)


__all__ = ["Store", "check_integrity"]
