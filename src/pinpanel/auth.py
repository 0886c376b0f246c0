"""Who may do what: API tokens, browser sessions, and the first-start admin token.

A token is ``pp_`` + 32 random bytes (``secrets.token_urlsafe``): far too much entropy to
guess, so a single unsalted SHA-256 is the right hash for it (a slow password hash buys
nothing against a 256-bit secret and would cost every API request milliseconds on a Pi
Zero). Only that hash is stored; the token itself is shown once, when it is made, and is
never logged. Each token has a name (which the audit log records as the actor) and a scope:
``read`` < ``control`` < ``admin``.

Browser logins become server-side sessions: a random session id in an ``HttpOnly`` cookie,
its hash in the ``sessions`` table, tied to the token it was opened with, so revoking the
token ends its sessions too. The page's CSRF token is derived from the session id with an
HMAC, so it needs no storage and is worthless without the cookie.

Checking credentials is on every request's path, so :class:`Keyring` keeps hash -> principal
in memory. It must still notice a token revoked by ``pinpanel token revoke`` in another
process at once, so before a lookup it reads SQLite's ``PRAGMA data_version`` (a counter
in shared memory that moves when another connection commits; no disk read; at most once a
millisecond, see :data:`RECHECK_S`) and, only when that moved, the ``auth_generation`` row
that every token or session change increments. Pin changes move ``data_version`` too, but
then cost one indexed read, not a reload. Changes made by this process (login, logout, the
token API) mark the cache stale directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from pinpanel.config import Config
from pinpanel.errors import AuthError, TokenExistsError, TokenNotFoundError
from pinpanel.store import Store

log = logging.getLogger(__name__)

Scope = Literal["read", "control", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "control", "admin")
_RANK = {"read": 1, "control": 2, "admin": 3}
TOKEN_PREFIX = "pp_"  # noqa: S105 - a marker for secret scanners, not a secret
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: Longer "tokens" are not looked up at all (a real one is 46 characters).
MAX_TOKEN_LENGTH = 128
#: ``last_used_at`` is written at most this often per token, to spare the SD card.
TOUCH_EVERY_S = 600.0
FIRST_LOGIN_FILE = "first-login.txt"
GENERATION_KEY = "auth_generation"
#: How long one look at ``data_version`` stands for the requests after it. A request that
#: starts within a millisecond of another process's commit could as well have started just
#: before it, so this changes nothing anyone can observe, while under load it spares most
#: requests the ~10 µs query (a sixth of a small request's cost on this stack).
RECHECK_S = 0.001
#: Hex digits of a token's hash used as the cache key (64 bits: no collisions in practice).
_INDEX = 16


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: ``name`` goes to the audit log, ``scope`` decides what is allowed.

    ``via`` says how they proved it: ``token`` (Bearer), ``session`` (browser cookie, so
    state changes also need the CSRF token), ``open`` (auth is off) or ``internal``
    (``pinpanel serve --get``: the operator, who holds the data directory anyway).
    """

    name: str
    scope: Scope
    via: str = "token"

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


#: Everyone, when ``[auth] enabled = false``: the tutorial's open server.
OPEN_PRINCIPAL = Principal("anonymous", "admin", "open")
#: ``pinpanel serve --get``: one request from the shell of the machine itself.
OPERATOR = Principal("operator", "admin", "internal")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never the secret, which is not stored."""

    name: str
    scope: Scope
    created_at: str
    last_used_at: str | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "created_at": self.created_at,
                "last_used_at": self.last_used_at}


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (see the module docstring for why not a KDF)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_for(session_id: str) -> str:
    """The CSRF token of a session: an HMAC keyed with the (secret) session id."""
    return hmac.new(session_id.encode(), b"pinpanel csrf v1", hashlib.sha256).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise AuthError(f"token name {name!r} must be 1-64 letters, digits, '.', '_', '@' "
                        "or '-', starting with a letter or digit")
    return name


def check_scope(scope: str) -> Scope:
    if scope not in SCOPES:
        raise AuthError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- writes: each runs inside one transaction and bumps the generation -------------------------


def _bump(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE "
                 "SET value = CAST(value AS INTEGER) + 1", (GENERATION_KEY,))


def _insert_token(name: str, scope: Scope, hashed: str) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
            raise TokenExistsError(f"a token named {name!r} already exists "
                                   "(revoke it first, or pick another name)")
        conn.execute("INSERT INTO tokens (name, hash, scope, created_at) VALUES (?, ?, ?, ?)",
                     (name, hashed, scope, _now()))
        _bump(conn)
    return work


def _delete_token(name: str) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM sessions WHERE token_name = ?", (name,))
        if conn.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount == 0:
            raise TokenNotFoundError(f"no token named {name!r}")
        _bump(conn)
    return work


def _list_tokens(conn: sqlite3.Connection) -> list[TokenInfo]:
    rows = conn.execute("SELECT name, scope, created_at, last_used_at FROM tokens ORDER BY name")
    return [TokenInfo(r[0], r[1], r[2], r[3]) for r in rows]


def create_token(store: Store, name: str, scope: str = "control") -> str:
    """Make a token (blocking: CLI and start-up); returns the secret, shown only once."""
    token = new_token()
    store.write_sync(_insert_token(check_name(name), check_scope(scope), digest(token)))
    return token


def revoke_token(store: Store, name: str) -> None:
    """Delete a token and its browser sessions; a running server refuses it at once."""
    store.write_sync(_delete_token(name))


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.reading() as conn:
        return _list_tokens(conn)


# -- the cache every request consults ----------------------------------------------------------


class Keyring:
    """Token and session lookups for the web layer, cached and kept fresh (see module doc)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time, *,
                 recheck_s: float = RECHECK_S) -> None:
        self._store = store
        self._clock = clock
        self._recheck_s = recheck_s
        self._checked_at = -math.inf
        self._tokens: dict[str, tuple[str, Principal]] = {}
        self._sessions: dict[str, tuple[Principal, float]] = {}
        self._data_version: int | None = None
        self._generation: str | None = None
        self._dirty = True
        self._touched: dict[str, float] = {}

    def invalidate(self) -> None:
        """Reload before the next lookup (this process changed tokens or sessions)."""
        self._dirty = True

    def _refresh(self) -> None:
        now = time.monotonic()
        if not self._dirty and now - self._checked_at < self._recheck_s:
            return
        self._checked_at = now
        with self._store.reading() as conn:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version and not self._dirty:
                return
            self._data_version = version
            row = conn.execute("SELECT value FROM meta WHERE key = ?",
                               (GENERATION_KEY,)).fetchone()
            generation = row[0] if row else "0"
            if generation == self._generation and not self._dirty:
                return
            tokens = conn.execute("SELECT hash, name, scope FROM tokens").fetchall()
            sessions = conn.execute(
                "SELECT s.hash, t.name, t.scope, s.expires FROM sessions s "
                "JOIN tokens t ON t.name = s.token_name WHERE s.expires > ?",
                (self._clock(),)).fetchall()
        self._tokens = {h[:_INDEX]: (h, Principal(name, scope, "token"))
                        for h, name, scope in tokens}
        self._sessions = {h: (Principal(name, scope, "session"), expires)
                          for h, name, scope, expires in sessions}
        self._generation = generation
        self._dirty = False

    def verify_token(self, token: str) -> Principal | None:
        """The principal of a Bearer token, or None if unknown or revoked."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        hashed = digest(token)
        self._refresh()
        # Looked up by a prefix of the hash, then compared in full in constant time: lookup
        # timing can reveal at most a prefix of some stored hash, which brings no one closer
        # to a token (that would take a SHA-256 preimage).
        entry = self._tokens.get(hashed[:_INDEX])
        if entry is None or not hmac.compare_digest(entry[0], hashed):
            return None
        self._touch(entry[1].name)
        return entry[1]

    def verify_session(self, session_id: str) -> Principal | None:
        """The principal of a browser session id, or None if unknown, ended or expired."""
        if not session_id or len(session_id) > MAX_TOKEN_LENGTH:
            return None
        self._refresh()
        entry = self._sessions.get(digest(session_id))
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def _touch(self, name: str) -> None:
        now = self._clock()
        if now - self._touched.get(name, 0.0) < TOUCH_EVERY_S:
            return
        self._touched[name] = now
        stamp = _now()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE tokens SET last_used_at = ? WHERE name = ?", (stamp, name))

        with contextlib.suppress(RuntimeError):  # no running loop: not worth recording
            self._store.write(work).add_done_callback(_quiet)

    # -- changes from the web layer (durable, off the event loop) -------------------------------

    async def open_session(self, principal: Principal, hours: int) -> str:
        """Start a browser session for ``principal``; returns the id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            conn.execute("INSERT INTO sessions (hash, token_name, created, expires) "
                         "VALUES (?, ?, ?, ?)",
                         (digest(session_id), principal.name, now, now + hours * 3600))
            _bump(conn)

        await self._store.write(work)
        self.invalidate()
        return session_id

    async def close_session(self, session_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE hash = ?", (digest(session_id),))
            _bump(conn)

        await self._store.write(work)
        self.invalidate()

    async def create(self, name: str, scope: str) -> str:
        """Make a token from a running server (the admin API); returns the secret once."""
        token = new_token()
        await self._store.write(_insert_token(check_name(name), check_scope(scope),
                                              digest(token)))
        self.invalidate()
        return token

    async def revoke(self, name: str) -> None:
        await self._store.write(_delete_token(name))
        self.invalidate()

    def tokens(self) -> list[TokenInfo]:
        return list_tokens(self._store)


def _quiet(future: Any) -> None:
    """Consume a background write's outcome; a lost ``last_used_at`` is not worth a warning."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("recording token use failed: %s", future.exception())


# -- first start -------------------------------------------------------------------------------


def lan_address() -> str:
    """This machine's address on its default route (no packet is sent), else its host name."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            return str(probe.getsockname()[0])
        except OSError:
            return socket.gethostname()


def base_url(config: Config) -> str:
    """The address a phone on the LAN would use to reach this server."""
    server = config.server
    scheme = "https" if server.certfile else "http"
    named = [h for h in server.trusted_hosts if "*" not in h]
    if named:  # with an explicit list, a bare IP would be refused by the host check
        host = named[0]
    elif server.host in ("0.0.0.0", "::", ""):
        host = lan_address()
    else:
        host = server.host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{server.port}"


def login_link(config: Config, token: str) -> str:
    return f"{base_url(config)}/login?token={token}"


def qr_text(url: str) -> str:
    import io

    import segno

    buffer = io.StringIO()
    segno.make(url, error="l").terminal(out=buffer, compact=True)
    return buffer.getvalue()


def login_message(config: Config, token: str, name: str) -> str:
    url = login_link(config, token)
    return (f"\nLog in to pinpanel as {name!r}: open this link, or scan the code with a "
            f"phone.\nThe link is a password: it is shown only this once.\n\n  {url}\n\n"
            f"{qr_text(url)}\n")


def announce(config: Config, store: Store, out: TextIO | None = None) -> None:
    """At start-up: warn when auth is off; make the first admin token when none exists.

    The login link goes to the terminal only, never through logging (secrets never reach a
    log). Without a terminal (systemd), it is written to a 0600 file in the data directory
    and only that file's path is logged.
    """
    out = out or sys.stdout
    if not config.auth.enabled:
        log.warning("authentication is OFF ([auth] enabled = false or --no-auth): anyone who "
                    "can reach this server can switch its pins. Use it on a trusted network "
                    "only.")
        return
    existing = list_tokens(store)
    if existing:
        log.info("%d API token(s) exist. For a new login link: pinpanel token create NAME "
                 "--scope admin --link", len(existing))
        return
    token = create_token(store, "admin", "admin")
    message = login_message(config, token, "admin")
    if out.isatty():
        out.write(message)
        out.flush()
        return
    path = store.path.parent / FIRST_LOGIN_FILE
    write_private(path, message)
    log.warning("no API token existed, so an admin token was made. Its login link is in %s "
                "(readable only by this user): open it, then delete the file", path)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, created that way (no window at 0644)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
