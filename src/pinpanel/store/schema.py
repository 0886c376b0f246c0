"""What pinpanel's state database is: its file, its schema and migrations, and the checks
that keep a damaged or newer file from ever being opened for writing.

A damaged file is never opened for writing: :func:`check_integrity` looks at it read-only
first, so the file stays exactly as it was for the user to inspect or restore. Backups
(:func:`snapshot`) and restores (:func:`verify_file`) check a database the same way, for
the state database and, with their own :class:`DatabaseKind`, for the readings database.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from pinpanel.errors import StoreCorruptError, StoreError, StoreVersionError

log = logging.getLogger("pinpanel.store")

DB_NAME = "pinpanel.sqlite3"
SQLITE_MAGIC = b"SQLite format 3\x00"

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


def _connect(path: Path, *, readonly: bool = False, immutable: bool = False,
             ) -> sqlite3.Connection:
    query = "?mode=ro" + ("&immutable=1" if immutable else "") if readonly else ""
    conn = sqlite3.connect(f"file:{path}{query}", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _durable(conn: sqlite3.Connection) -> None:
    """Every commit on this connection is fsynced before COMMIT returns."""
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


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

