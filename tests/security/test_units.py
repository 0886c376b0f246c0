"""The pieces in process: the keyring's cache and its invalidation, the failure limiter,
the first-start announcement, and small parsers."""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinpanel import auth, first_start
from pinpanel.changes import Actor, ChangeRecord, utc_now
from pinpanel.config import load, with_overrides
from pinpanel.errors import AuthError, TokenExistsError
from pinpanel.store import Store
from pinpanel.web.login import safe_next
from pinpanel.web.ratelimit import FailureLimiter
from pinpanel.web.routing import RouteTable
from pinpanel.web.security import Guard, SecurityMiddleware, session_id_of


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "data")
    yield opened  # type: ignore[misc]
    opened.close()


def test_only_the_hash_is_stored_and_lookups_are_by_hash(store: Store) -> None:
    token = auth.create_token(store, "phone", "control")
    assert token.startswith("pp_") and len(token) == 46
    with store.reading() as conn:
        rows = conn.execute("SELECT name, hash, scope FROM tokens").fetchall()
    assert rows == [("phone", auth.digest(token), "control")]
    keyring = auth.Keyring(store, recheck_s=0)
    assert keyring.verify_token(token) == auth.Principal("phone", "control", "token")
    assert keyring.verify_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert keyring.verify_token("") is None and keyring.verify_token("x" * 500) is None
    with pytest.raises(TokenExistsError):
        auth.create_token(store, "phone", "read")


def test_a_change_from_another_process_is_seen_on_the_next_lookup(store: Store) -> None:
    keyring = auth.Keyring(store, recheck_s=0)
    token = auth.create_token(store, "phone", "read")
    assert keyring.verify_token(token) is not None
    other = Store.open(store.path.parent)  # its own connections, as the CLI would have
    try:
        auth.revoke_token(other, "phone")
        assert keyring.verify_token(token) is None
        late = auth.create_token(other, "late", "admin")
        assert keyring.verify_token(late) == auth.Principal("late", "admin", "token")
    finally:
        other.close()


def test_unrelated_writes_do_not_reload_the_cache(store: Store) -> None:
    keyring = auth.Keyring(store, recheck_s=0)
    token = auth.create_token(store, "phone", "read")
    assert keyring.verify_token(token)
    statements: list[str] = []
    with store.reading() as conn:
        conn.set_trace_callback(statements.append)
    other = Store.open(store.path.parent)
    try:
        assert keyring.verify_token(token)
        assert statements == ["PRAGMA data_version"], "nothing changed: one cheap check"
        statements.clear()
        other.write_sync(lambda conn: conn.execute(
            "INSERT INTO meta (key, value) VALUES ('unrelated', 'x')"))
        assert keyring.verify_token(token)
        assert not any("FROM tokens" in s for s in statements), statements
        statements.clear()
        auth.create_token(other, "another", "read")
        assert keyring.verify_token(token)
        assert any("FROM tokens" in s for s in statements), "a token change reloads"
    finally:
        other.close()
        with store.reading() as conn:
            conn.set_trace_callback(None)


def test_one_look_at_data_version_serves_the_requests_of_a_millisecond(store: Store) -> None:
    keyring = auth.Keyring(store, recheck_s=3600)  # a window no test run outlasts
    token = auth.create_token(store, "phone", "read")
    assert keyring.verify_token(token)
    statements: list[str] = []
    with store.reading() as conn:
        conn.set_trace_callback(statements.append)
    try:
        for _ in range(100):
            assert keyring.verify_token(token)
        assert statements == []
        keyring.invalidate()  # this process changed something: no waiting for the window
        assert keyring.verify_token(token)
        assert any("FROM tokens" in s for s in statements)
    finally:
        with store.reading() as conn:
            conn.set_trace_callback(None)


def toggle(pin: int = 18) -> ChangeRecord:
    return ChangeRecord(pin, f"gpio{pin}", None, True, Actor("tester", "api"), utc_now())


@contextlib.contextmanager
def traced(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store's reading connection runs inside the block."""
    statements: list[str] = []
    with store.reading() as conn:
        conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        with store.reading() as conn:
            conn.set_trace_callback(None)


def window_over(keyring: auth.Keyring) -> None:
    """As if the keyring's last look were more than its window ago (no sleeping in tests)."""
    keyring._checked_at = -math.inf


async def test_while_the_writer_commits_pin_changes_the_keyring_asks_nothing(
        store: Store) -> None:
    keyring = auth.Keyring(store, recheck_s=3600)
    token = auth.create_token(store, "phone", "read")
    await store.commit([toggle()])
    assert keyring.verify_token(token)
    await store.commit([toggle()])  # with the token's first use noted: counted
    window_over(keyring)
    assert keyring.verify_token(token)
    await store.commit([toggle()])  # pin changes alone: nothing for the keyring
    with traced(store) as statements:
        window_over(keyring)
        assert keyring.verify_token(token)
        assert statements == [], "the writer's look stands for the keyring's"


async def test_a_revoke_by_another_process_is_seen_through_the_writers_look(
        store: Store) -> None:
    keyring = auth.Keyring(store, recheck_s=3600)
    token = auth.create_token(store, "phone", "read")
    await store.commit([toggle()])
    assert keyring.verify_token(token)
    other = Store.open(store.path.parent)
    try:
        with traced(store) as statements:
            auth.revoke_token(other, "phone")
            await store.commit([toggle()])  # its transaction sees the other commit
            window_over(keyring)
            assert keyring.verify_token(token) is None
            assert "PRAGMA data_version" not in statements
            assert any("FROM tokens" in s for s in statements), "the revoke reloaded the cache"
    finally:
        other.close()


async def test_a_token_made_through_another_keyring_of_this_process_is_seen(
        store: Store) -> None:
    maker, watcher = auth.Keyring(store, recheck_s=3600), auth.Keyring(store, recheck_s=3600)
    await store.commit([toggle()])
    assert watcher.verify_token("pp_nothing") is None
    token = await maker.create("tablet", "control")  # the writer's own job: no data_version
    window_over(watcher)
    assert watcher.verify_token(token) == auth.Principal("tablet", "control", "token")


async def test_sessions_expire_and_end(store: Store) -> None:
    now = [1_800_000_000.0]
    keyring = auth.Keyring(store, clock=lambda: now[0], recheck_s=0)
    auth.create_token(store, "phone", "control")
    owner = auth.Principal("phone", "control", "token")
    first = await keyring.open_session(owner, hours=1)
    second = await keyring.open_session(owner, hours=1)
    assert keyring.verify_session(first) == auth.Principal("phone", "control", "session")
    await keyring.close_session(second)
    assert keyring.verify_session(second) is None
    now[0] += 3601
    assert keyring.verify_session(first) is None
    with store.reading() as conn:
        stored = [row[0] for row in conn.execute("SELECT hash FROM sessions")]
    assert stored == [auth.digest(first)]  # only the hash, and only until the next login


def test_names_and_scopes_are_checked() -> None:
    for bad in ("", " x", "a b", "../etc", "x" * 65, "é", "phone\n"):
        with pytest.raises(AuthError):
            auth.check_name(bad)
    assert auth.check_name("kitchen-tablet.2@home") == "kitchen-tablet.2@home"
    with pytest.raises(AuthError):
        auth.check_scope("root")


def test_the_limiter_counts_a_sliding_minute_per_address() -> None:
    now = [1000.0]
    limiter = FailureLimiter(3, clock=lambda: now[0], max_clients=2)
    assert limiter.failed("10.0.0.1") == (None, False)
    assert limiter.failed("10.0.0.1") == (None, False)
    assert limiter.failed("10.0.0.1") == (60, True)  # the third begins the wait, once
    assert limiter.failed("10.0.0.1") == (60, False)
    assert limiter.retry_after("10.0.0.1") == 60
    assert limiter.retry_after("10.0.0.2") is None
    now[0] += 45
    assert limiter.retry_after("10.0.0.1") == 15
    now[0] += 15
    assert limiter.retry_after("10.0.0.1") is None
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):  # bounded memory
        limiter.failed(address)
    assert len(limiter._failures) <= 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_first_start_prints_the_link_and_qr_to_a_terminal_only(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    config = with_overrides(load(None), server__host="127.0.0.1", server__port=8123)
    out = Terminal()
    with caplog.at_level(logging.DEBUG):
        first_start.announce(config, store, out)
    text = out.getvalue()
    assert "http://127.0.0.1:8123/login?token=pp_" in text and "\u2588" in text
    token = text.split("token=")[1].split()[0]
    assert token not in caplog.text
    assert [t.name for t in auth.list_tokens(store)] == ["admin"]
    store.write_sync(lambda conn: conn.execute(  # the link was used (else it is made anew)
        "UPDATE tokens SET last_used_at = '2026-12-02T10:00:00Z'"))
    again = Terminal()
    with caplog.at_level(logging.INFO):
        first_start.announce(config, store, again)
    assert again.getvalue() == ""
    assert "pinpanel token create NAME --scope admin" in caplog.text


def test_the_login_link_uses_a_reachable_address() -> None:
    base = load(None)
    assert first_start.base_url(with_overrides(base, server__host="10.1.2.3")) == \
        "http://10.1.2.3:8080"
    assert first_start.base_url(with_overrides(base, server__certfile="c.pem")).startswith("https://")
    wildcard = first_start.base_url(base)
    assert "0.0.0.0" not in wildcard
    named = with_overrides(base, server__trusted_hosts=("*.lan", "pi.example.org"))
    assert first_start.base_url(named) == "http://pi.example.org:8080"


def test_small_parsers() -> None:
    assert session_id_of(b"a=1; pinpanel_session=abc; b=2") == "abc"
    assert session_id_of(b"pinpanel_session_x=abc") is None
    assert session_id_of(None) is None
    assert safe_next("/docs?x=1") == "/docs?x=1"
    for bad in (None, "", "docs", "//evil", "/\\evil", "https://evil"):
        assert safe_next(bad) == "/"


def test_a_wildcard_cors_origin_is_never_honoured(store: Store) -> None:
    config = with_overrides(load(None), server__cors_origins=("*", "http://app.lan:3000"))

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    guard = Guard.create(config, auth.Keyring(store))
    middleware = SecurityMiddleware(app, guard=guard, table=RouteTable([]))  # type: ignore[arg-type]
    assert middleware.cors == frozenset({b"http://app.lan:3000"})
