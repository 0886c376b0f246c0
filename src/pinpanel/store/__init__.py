"""SQLite state: the last committed state of every pin, the audit log, tokens and sessions,
automation's records, and (in :mod:`pinpanel.store.readings`) the sensors' readings.

All of pinpanel's SQL lives in this package, one module a concern:

* :mod:`.schema`: the state database's file, migrations, integrity and backup checks;
* :mod:`.core`: the writer thread (group commit, gapless seq) and the reader;
* :mod:`.state`, :mod:`.tokens`, :mod:`.automation`: the queries of their tables;
* :mod:`.readings`: the readings database, its own file and batched writer.

This face holds only :class:`Store` and the names callers need from :mod:`.schema`.
"""

from __future__ import annotations

from pinpanel.store.automation import AutomationTables
from pinpanel.store.schema import (
    DB_NAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATE_DATABASE,
    DatabaseKind,
    check_integrity,
    snapshot,
    verify_file,
    verify_image,
)
from pinpanel.store.state import StateTables
from pinpanel.store.tokens import AUTH_GENERATION_KEY, AuthTables


class Store(StateTables, AuthTables, AutomationTables):
    """The state database. Open with :meth:`open`; close with :meth:`close`."""


__all__ = ["AUTH_GENERATION_KEY", "DB_NAME", "MIGRATIONS", "SCHEMA_VERSION", "STATE_DATABASE",
           "DatabaseKind", "Store", "check_integrity", "snapshot", "verify_file", "verify_image"]
