"""The one per-pin check (:func:`pinpanel.auth.may`), grants, lifetimes, and expiry on an
injected clock: a guest link and its sessions stop the moment its lifetime ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinpanel import auth
from pinpanel.errors import AuthError
from pinpanel.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with contextlib.closing(Store.open(tmp_path)) as opened:
        yield opened


def test_may_checks_scope_then_grant() -> None:
    grants = auth.make_grants({18: ["switch"], 23: ["pulse"], 24: []})
    guest = auth.Principal("guest:g", "control", grants=grants)
    assert auth.may(guest, "see", 24) and not auth.may(guest, "on", 24)
    assert auth.may(guest, "toggle", 18) and auth.may(guest, "off", 18)
    assert auth.may(guest, "pulse", 23) and not auth.may(guest, "toggle", 23)
    assert not auth.may(guest, "see", 25) and not auth.may(guest, "level", 18)
    reader = auth.Principal("r", "read", grants=grants)
    assert auth.may(reader, "see", 18) and not auth.may(reader, "on", 18)
    everyone = auth.Principal("admin", "admin")
    assert all(auth.may(everyone, a, 5) for a in ("see", *auth.PIN_ACTIONS))
    assert not auth.may(None, "see", 18)
    assert guest.pins() == {18, 23, 24} and everyone.pins() is None


def test_grants_round_trip_and_refuse_unknown_actions() -> None:
    grants = auth.make_grants({18: ["on", "off"], 23: ["pulse"]})
    assert auth.grants_from_json(auth.grants_json(grants)) == grants
    assert auth.grants_as_json(grants) == {"18": ["off", "on"], "23": ["pulse"]}
    with pytest.raises(AuthError, match="unknown action"):
        auth.make_grants({18: ["explode"]})


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600.0), ("1d", 86400.0),
                                               ("1w", 604800.0), ("never", None),
                                               ("90m", 5400.0), ("30s", 30.0)])
def test_lifetimes(text: str, seconds: float | None) -> None:
    assert auth.parse_lifetime(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "soon", "1y", "-1h"])
def test_bad_lifetimes(text: str) -> None:
    with pytest.raises(AuthError):
        auth.parse_lifetime(text)


def test_expiry_ends_the_link_and_its_sessions_at_once(store: Store) -> None:
    clock = Clock()
    keyring = auth.Keyring(store, clock)
    grants = auth.make_grants({18: ["pulse"]})

    async def scenario() -> tuple[str, str]:
        token = await keyring.create("visit", "control", grants=grants, lifetime_s=3600,
                                     kind="guest")
        principal = keyring.verify_token(token)
        assert principal is not None and principal.name == "guest:visit"
        session = await keyring.open_session(principal, hours=720)  # capped at the link's
        return token, session

    token, session = asyncio.run(scenario())
    clock.now += 3599
    assert keyring.verify_token(token) is not None
    assert keyring.verify_session(session) is not None
    clock.now += 1
    assert keyring.verify_token(token) is None
    assert keyring.verify_session(session) is None
    info = next(t for t in keyring.tokens() if t.name == "visit")
    assert info.kind == "guest" and info.as_json()["pins"] == {"18": ["pulse"]}


def test_a_plain_token_never_expires_and_revoking_a_guest_needs_its_kind(store: Store) -> None:
    clock = Clock()
    keyring = auth.Keyring(store, clock)
    token = auth.create_token(store, "phone", "control")
    clock.now += 10 * 365 * 86400
    assert keyring.verify_token(token) is not None
    from pinpanel.errors import TokenNotFoundError

    async def revoke() -> None:
        await keyring.revoke("phone", kind="guest")

    with pytest.raises(TokenNotFoundError):
        asyncio.run(revoke())
    assert keyring.verify_token(token) is not None
