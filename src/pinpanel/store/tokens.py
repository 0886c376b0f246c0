"""Tokens and sessions: the SQL behind :mod:`pinpanel.auth` (only hashes are stored)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from pinpanel.errors import TokenExistsError, TokenNotFoundError
from pinpanel.store.core import StoreCore

#: The meta row every token or session change increments (keyrings watch it).
AUTH_GENERATION_KEY = "auth_generation"


class AuthTables(StoreCore):
    """``tokens`` and ``sessions``; every change bumps :data:`AUTH_GENERATION_KEY`."""

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

