"""The store's engine: one writer thread that commits in groups, and one reader.

Durability is the point: an acknowledged change survives ``kill -9`` and a power cut, so a
relay never comes back in a state nobody asked for. Hence WAL with ``synchronous=FULL``
(every commit is fsynced) and a commit before anyone is told of a change.

An fsync takes milliseconds on an SD card, so it never runs on the event loop: one writer
thread owns the write connection and commits whatever has queued up in one transaction
(group commit). Thirty-two concurrent toggles cost one fsync, not thirty-two, and sequence
numbers are assigned in that single thread, so they grow without gaps in commit order.
Readers (history pages) use their own connection; WAL lets them run beside the writer.

The tables' own queries live beside it, one module a concern (:mod:`.state`,
:mod:`.tokens`, :mod:`.automation`), as classes over :class:`StoreCore` that
:class:`pinpanel.store.Store` puts together.
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
from typing import Any, Self, TypeVar

from pinpanel.changes import Actor, ChangeRecord, Committed, format_time
from pinpanel.errors import StoreError
from pinpanel.store.schema import (
    _connect,
    _create_private,
    _durable,
    _migrate,
    check_integrity,
    prepare_data_dir,
)

log = logging.getLogger("pinpanel.store")
T = TypeVar("T")

#: Retention runs at least this often (in committed changes), and at start-up.
TRIM_EVERY = 500
#: At most this many queued jobs share one transaction.
BATCH_MAX = 256
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


class StoreCore:
    """The connections and the writer thread; the tables' queries come in through mixins."""

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
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._closed = False
        self._commit_observers: list[Callable[[float], None]] = []
        #: (time.monotonic(), count): every other connection's commit before that moment,
        #: and every batch with work other than pin changes, is counted. None until the
        #: writer's first commit. Set on the writer thread as one tuple (one atomic
        #: store); read by the keyring on the loop.
        self.writes_seen: tuple[float, int] | None = None
        self._writes_counted = 0
        self._writer_version: int | None = None
        # Jobs submitted during one pass of the event loop go to the writer together.
        self._pending: list[_Job] = []
        self._pending_loop: asyncio.AbstractEventLoop | None = None
        self.last_seq: int = _stored_last_seq(conn)
        self._trimmed_at = self.last_seq
        self._trim()
        self._thread = threading.Thread(target=self._writer, name="pinpanel-store", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, data_dir: Path, *, max_rows: int = 100_000, max_age_days: int = 90) -> Self:
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
        waiting: list[_Job] = []
        stop = False
        while waiting or not stop:
            if not waiting:
                jobs = self._queue.get()
                if jobs is None:
                    return
                waiting = jobs
            while len(waiting) < BATCH_MAX and not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True  # finish what is queued, then stop
                    break
                waiting.extend(more)
            batch, waiting = waiting[:BATCH_MAX], waiting[BATCH_MAX:]
            try:
                self._run_batch(batch)
            except Exception:  # the writer must outlive any one batch
                log.exception("the store's writer failed a batch")

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
        self._look_for_other_writers(batch)  # before the waiters hear: they may ask at once
        _tell(batch, outcomes)
        for observer in self._commit_observers:
            try:  # after the waiters are told: a failing observer must not strand them
                observer(elapsed)
            except Exception:
                log.exception("a commit observer failed")
        if self.last_seq - self._trimmed_at >= self._trim_every:
            self._trim()

    def _transaction(self, batch: list[_Job]) -> tuple[list[tuple[bool, Any]], int]:
        """One try at committing ``batch``: each job's outcome, and the last seq given out.

        The pin changes between two other jobs go in as one ``executemany`` per table, and
        ``pin_state`` gets only each pin's last change of them (32 toggles of one pin are 32
        history rows but one state row): every statement is a release and re-take of the GIL
        that the event loop pays for too, so the fewer, the cheaper every request.
        """
        outcomes: list[tuple[bool, Any]] = []
        seq = self.last_seq
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        rows: list[tuple[Any, ...]] = []
        states: dict[int, tuple[Any, ...]] = {}
        for job in batch:
            if callable(job.work):
                _insert_changes(conn, rows, states)  # in job order: it may read them
                outcomes.append(self._run_own(conn, job.work))
                continue
            done: list[Committed] = []
            for record in job.work:
                seq += 1
                actor = record.actor
                rows.append((seq, record.at, record.pin, record.pin_id, record.old, record.new,
                             actor.cause, actor.name, actor.client, record.old_level,
                             record.new_level, record.old_angle, record.new_angle))
                states[record.pin] = (record.pin, record.new, seq, record.at, actor.name,
                                      actor.cause, record.new_level, record.new_angle)
                done.append(record.committed(seq))
            outcomes.append((True, done))
        _insert_changes(conn, rows, states)
        if not conn.in_transaction:
            # SQLite rolls back by itself on some errors (disk full, I/O); a COMMIT now
            # would "succeed" with nothing in it.
            raise sqlite3.OperationalError("the transaction was rolled back by SQLite")
        conn.execute("COMMIT")  # synchronous=FULL: returns after the fsync
        return outcomes, seq

    def _look_for_other_writers(self, batch: list[_Job]) -> None:
        """After a commit: count it if another connection committed since the last look, or
        if it held work other than pin changes (a token, a session); see :attr:`writes_seen`.

        The writer's own ``data_version`` moves only for other connections' commits (another
        process, :meth:`write_sync`), never for its own pin changes, so while the writer is
        busy the keyring can skip its own look at the database (see
        :class:`pinpanel.auth.Keyring`). One cheap PRAGMA per batch, on this thread. The
        moment is taken before the PRAGMA's read, which sees every commit made before it.
        """
        looked_at = time.monotonic()
        try:
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return  # no look, no vouching: the keyring looks for itself
        if version != self._writer_version or any(callable(job.work) for job in batch):
            self._writes_counted += 1
        self._writer_version = version
        self.writes_seen = (looked_at, self._writes_counted)

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
        """Queue ``work`` for the writer; it is handed over at the end of this loop pass.

        Every request of one pass of the loop (32 toggles read in one go) thus reaches the
        writer as one hand-off and one batch, instead of waking it for the first and making
        the rest wait for the next fsync. The answer still waits for the commit.
        """
        if self._closed:
            raise StoreError(f"the state database {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._pending_loop is not loop:
            self._hand_over()  # another loop's jobs (tests run several): theirs go first
            self._pending_loop = loop
        if not self._pending:
            loop.call_soon(self._hand_over, loop)
        self._pending.append(_Job(work, loop, future))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Give the writer everything submitted since the last hand-over, in order.

        ``loop``: the loop whose pass ends; its call is late if another loop's jobs have
        been handed over since, and finds only theirs (handed over by their own call).
        """
        if loop is not None and loop is not self._pending_loop:
            return
        if self._pending:
            self._queue.put(self._pending)
            self._pending = []

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

    def write_meta_sync(self, key: str, value: str) -> None:
        """:meth:`write_meta` from outside the event loop (CLI, start-up)."""
        self.write_sync(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)))

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: moves when another connection commits.

        A counter in shared memory, no disk read: cheap enough to ask on every request.
        """
        with self.reading() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        """Finish queued commits, then close both connections."""
        if self._closed:
            return
        self._closed = True
        self._hand_over()  # submitted in this loop pass: still committed before closing
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


_INSERT_HISTORY = (f"INSERT INTO history ({_ROW_COLUMNS}) "  # noqa: S608
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_UPSERT_STATE = ("INSERT OR REPLACE INTO pin_state (pin, state, seq, changed_at, actor, cause, "
                 "level, angle) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _insert_changes(conn: sqlite3.Connection, rows: list[tuple[Any, ...]],
                    states: dict[int, tuple[Any, ...]]) -> None:
    """Write the pin changes gathered so far (history rows, each pin's last state); clear."""
    if not rows:
        return
    conn.executemany(_INSERT_HISTORY, rows)
    conn.executemany(_UPSERT_STATE, states.values())
    rows.clear()
    states.clear()


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

