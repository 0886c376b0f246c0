"""Who may do what: principals and scopes, token crypto, and the keyring every request asks.

A token is ``pp_`` + 32 random bytes (``secrets.token_urlsafe``): far too much entropy to
guess, so a single unsalted SHA-256 is the right hash for it (a slow password hash buys
nothing against a 256-bit secret and would cost every API request milliseconds on a Pi
Zero). Only that hash is stored; the token itself is shown once, when it is made, and is
never logged. Each token has a name (which the audit log records as the actor) and a scope:
``read`` < ``control`` < ``admin``.

The SQL lives in :mod:`pinpanel.store`; the first-start login link in
:mod:`pinpanel.first_start`; the ``token`` command in :mod:`pinpanel.cli.token`.

Browser logins become server-side sessions: a random session id in an ``HttpOnly`` cookie,
its hash in the ``sessions`` table, tied to the token it was opened with, so revoking the
token ends its sessions too. The page's CSRF token is derived from the session id with an
HMAC, so it needs no storage and is worthless without the cookie.

Checking credentials is on every request's path, so :class:`Keyring` keeps hash -> principal
in memory. It must still notice a token revoked by ``pinpanel token revoke`` in another
process at once, so before a lookup it reads SQLite's ``PRAGMA data_version`` (a counter
in shared memory that moves when another connection commits; no disk read; at most once a
millisecond, see :data:`RECHECK_S`) and, only when that moved, the ``auth_generation`` row
that every token or session change increments. Changes made by this process (login,
logout, the token API) mark the cache stale directly.

While pins change, the store's writer looks for it: its own connection's ``data_version``
moves only for other connections' commits (never for its own pin changes), it reads that
once per transaction on its own thread, and no connection can commit while it holds the
write lock, so each commit vouches for every other commit before it
(:attr:`pinpanel.store.core.StoreCore.writes_seen`). A keyring whose window is over takes
a look that recent as its own, with no query on the event loop; it asks the database itself
only when the writer has been idle for the window. (Under load that query was ~8 % of the
loop thread's time: its read transaction and the GIL it gives up to the busy writer.)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pinpanel.errors import AuthError
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
#: How long one look at ``data_version`` stands for the requests after it. A request that
#: starts within a millisecond of another process's commit could as well have started just
#: before it, so this changes nothing anyone can observe, while under load it spares most
#: requests the ~10 µs query (a sixth of a small request's cost on this stack).
RECHECK_S = 0.001
#: What a grant allows on a pin. Seeing it is implied by any grant of the pin; a new kind of
#: pin brings its action here (and its route asks :func:`may` with it).
PIN_ACTIONS: tuple[str, ...] = ("on", "off", "toggle", "pulse", "level", "angle", "simulate")
#: Shorthands for the forms and the command line: "switch" is on, off and toggle.
ACTION_SHORTHANDS: dict[str, tuple[str, ...]] = {"switch": ("on", "off", "toggle")}
#: The action that stands for "may see the pin" (its state, events and history).
SEE = "see"
#: Lifetimes offered for guest links and tokens (None: until revoked).
LIFETIMES: dict[str, float | None] = {"1h": 3600.0, "1d": 86400.0, "1w": 7 * 86400.0,
                                      "never": None}
_LIFETIME = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The audit actor of a guest link is its name with this prefix.
GUEST_PREFIX = "guest:"
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
    #: None: every pin. Otherwise the (pin, action) pairs allowed, with (pin, "see") for
    #: every pin it may see (see :func:`may`).
    grants: frozenset[tuple[int, str]] | None = None
    #: Unix time after which it is refused (None: until revoked).
    expires_at: float | None = None
    #: The token this principal was proved with (its sessions are tied to it); "" = name.
    token: str = ""

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]

    @property
    def limited(self) -> bool:
        return self.grants is not None

    @property
    def token_name(self) -> str:
        return self.token or self.name

    def pins(self) -> frozenset[int] | None:
        """The pins it may see (None: all)."""
        if self.grants is None:
            return None
        return frozenset(pin for pin, action in self.grants if action == SEE)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def may(principal: Principal | None, action: str, pin: int) -> bool:
    """May ``principal`` do ``action`` (``"see"`` or one of :data:`PIN_ACTIONS`) on ``pin``?

    The one check of per-pin access: the scope first (seeing needs ``read``, any action
    ``control``), then, for a limited principal, its grant of that pin and action.
    """
    if principal is None:
        return False
    if not principal.allows("read" if action == SEE else "control"):
        return False
    return principal.grants is None or (pin, action) in principal.grants


def make_grants(per_pin: Mapping[int, Iterable[str]]) -> frozenset[tuple[int, str]]:
    """``{pin: actions}`` -> grants; shorthands expanded, unknown actions refused."""
    grants: set[tuple[int, str]] = set()
    for pin, actions in per_pin.items():
        grants.add((pin, SEE))
        for action in actions:
            for one in ACTION_SHORTHANDS.get(action, (action,)):
                if one not in PIN_ACTIONS:
                    raise AuthError(f"unknown action {action!r}; actions are "
                                    f"{', '.join((*ACTION_SHORTHANDS, *PIN_ACTIONS))}")
                grants.add((pin, one))
    return frozenset(grants)


def grants_json(grants: frozenset[tuple[int, str]] | None) -> str | None:
    """How grants are stored: ``{"17": ["pulse"], "18": []}`` (an empty list: see only)."""
    if grants is None:
        return None
    per_pin: dict[str, list[str]] = {}
    for pin, action in sorted(grants):
        actions = per_pin.setdefault(str(pin), [])
        if action != SEE:
            actions.append(action)
    return json.dumps(per_pin, sort_keys=True)


def grants_from_json(text: str | None) -> frozenset[tuple[int, str]] | None:
    if text is None:
        return None
    return make_grants({int(pin): actions for pin, actions in json.loads(text).items()})


def grants_as_json(grants: frozenset[tuple[int, str]] | None) -> dict[str, list[str]] | None:
    """Grants for an API answer: BCM number (as a string) -> actions."""
    text = grants_json(grants)
    return None if text is None else dict(json.loads(text))


def parse_lifetime(text: str) -> float | None:
    """``1h``, ``1d``, ``1w``, ``never``, or any ``<n>s|m|h|d|w``: seconds (None: never)."""
    text = text.strip().lower()
    if text in LIFETIMES:
        return LIFETIMES[text]
    found = _LIFETIME.fullmatch(text)
    if found is None or int(found[1]) == 0:
        raise AuthError(f"lifetime must be like 1h, 1d, 1w, 90m or never, got {text!r}")
    return float(int(found[1]) * _UNIT_S[found[2]])


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
    grants: frozenset[tuple[int, str]] | None = None
    expires_at: float | None = None
    kind: str = "token"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "created_at": self.created_at,
                "last_used_at": self.last_used_at, "pins": grants_as_json(self.grants),
                "expires_at": stamp(self.expires_at)}


def stamp(moment: float | None) -> str | None:
    """Unix time as the API writes times (UTC, seconds); None stays None."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (see the module docstring for why not a KDF)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_for(session_id: str) -> str:
    """The CSRF token of a session: an HMAC keyed with the (secret) session id."""
    return hmac.new(session_id.encode(), b"pinpanel csrf v1", hashlib.sha256).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AuthError(f"token name {name!r} must be 1-64 letters, digits, '.', '_', '@' "
                        "or '-', starting with a letter or digit")
    return name


def check_scope(scope: str) -> Scope:
    if scope not in SCOPES:
        raise AuthError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_token(store: Store, name: str, scope: str = "control", *,
                 grants: frozenset[tuple[int, str]] | None = None,
                 lifetime_s: float | None = None, kind: str = "token",
                 now: float | None = None) -> str:
    """Make a token (blocking: CLI and start-up); returns the secret, shown only once.

    ``grants`` limit it to pins and actions, ``lifetime_s`` makes it expire.
    """
    token = new_token()
    expires = None if lifetime_s is None else (time.time() if now is None else now) + lifetime_s
    store.add_token_sync(check_name(name), check_scope(scope), digest(token), _now(),
                         grants=grants_json(grants), expires_at=expires, kind=kind)
    return token


def revoke_token(store: Store, name: str) -> None:
    """Delete a token and its browser sessions; a running server refuses it at once."""
    store.remove_token_sync(name)


def list_tokens(store: Store) -> list[TokenInfo]:
    return [TokenInfo(name, check_scope(scope), created, used, grants_from_json(grants),
                      expires, kind)
            for name, scope, created, used, grants, expires, kind in store.token_list()]


def _principal(name: str, scope: str, via: str, grants: str | None, expires: float | None,
               kind: str) -> Principal:
    if kind == "guest":  # the audit names the link; its sessions are tied to its token
        return Principal(GUEST_PREFIX + name, check_scope(scope), via,
                         grants_from_json(grants), expires, name)
    return Principal(name, check_scope(scope), via, grants_from_json(grants), expires)


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
        self._writes_seen: int | None = None
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
        seen = self._store.writes_seen
        if not self._dirty and seen is not None and now - seen[0] < self._recheck_s:
            # The writer committed within the window, and it counts every other
            # connection's commit before that moment (and every token or session write of
            # its own): while it is busy, that look stands for ours, with no query here.
            self._checked_at = seen[0]
            if seen[1] != self._writes_seen:
                self._writes_seen = seen[1]
                self._reload_if_changed(self._store.auth_generation())
            return
        self._checked_at = now
        if seen is not None:  # counted before the look below: what it counts is in it
            self._writes_seen = seen[1]
        version = self._store.data_version()
        if version == self._data_version and not self._dirty:
            return
        self._data_version = version
        self._reload_if_changed(self._store.auth_generation())

    def _reload_if_changed(self, generation: str) -> None:
        if generation == self._generation and not self._dirty:
            return
        tokens, sessions = self._store.auth_rows(self._clock())
        self._tokens = {h[:_INDEX]: (h, _principal(name, scope, "token", grants, until, kind))
                        for h, name, scope, grants, until, kind in tokens}
        self._sessions = {h: (_principal(name, scope, "session", grants, until, kind), expires)
                          for h, name, scope, grants, until, kind, expires in sessions}
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
        if entry[1].expired(self._clock()):
            return None
        self._touch(entry[1].token_name)
        return entry[1]

    def verify_session(self, session_id: str) -> Principal | None:
        """The principal of a browser session id, or None if unknown, ended or expired."""
        if not session_id or len(session_id) > MAX_TOKEN_LENGTH:
            return None
        self._refresh()
        entry = self._sessions.get(digest(session_id))
        now = self._clock()
        if entry is None or entry[1] <= now or entry[0].expired(now):
            return None
        return entry[0]

    def _touch(self, name: str) -> None:
        now = self._clock()
        if now - self._touched.get(name, 0.0) < TOUCH_EVERY_S:
            return
        self._touched[name] = now
        with contextlib.suppress(RuntimeError):  # no running loop: not worth recording
            self._store.touch_token(name, _now()).add_done_callback(_quiet)

    # -- changes from the web layer (durable, off the event loop) -------------------------------

    async def open_session(self, principal: Principal, hours: int) -> str:
        """Start a browser session for ``principal``; returns the id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + hours * 3600
        if principal.expires_at is not None:  # never outlives the link it came from
            expires = min(expires, principal.expires_at)
        await self._store.add_session(digest(session_id), principal.token_name, now, expires)
        self.invalidate()
        return session_id

    async def close_session(self, session_id: str) -> None:
        await self._store.remove_session(digest(session_id))
        self.invalidate()

    async def create(self, name: str, scope: str, *,
                     grants: frozenset[tuple[int, str]] | None = None,
                     lifetime_s: float | None = None, kind: str = "token") -> str:
        """Make a token or guest link from a running server (the admin API); returns the
        secret once. Expiry is on this keyring's clock."""
        token = new_token()
        expires = None if lifetime_s is None else self._clock() + lifetime_s
        await self._store.add_token(check_name(name), check_scope(scope), digest(token),
                                    _now(), grants=grants_json(grants), expires_at=expires,
                                    kind=kind)
        self.invalidate()
        return token

    def now(self) -> float:
        return self._clock()

    async def revoke(self, name: str, kind: str | None = None) -> None:
        await self._store.remove_token(name, kind)
        self.invalidate()

    def tokens(self) -> list[TokenInfo]:
        return list_tokens(self._store)


def _quiet(future: Any) -> None:
    """Consume a background write's outcome; a lost ``last_used_at`` is not worth a warning."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("recording token use failed: %s", future.exception())
