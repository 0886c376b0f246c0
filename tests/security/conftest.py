"""Servers shared by a whole test module, and the credentials the security tests use.

Starting a server costs about a second, so each module starts the few it needs once
(module scope) and runs its parametrized cases against them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pinpanel import auth
from pinpanel.store import Store
from pinpanel.web.security import SESSION_COOKIE
from tests.support import ServerProcess, run_cli

Spawn = Callable[..., ServerProcess]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawn]:
    """Start ``pinpanel serve`` processes that live until the module's tests are done."""
    started: list[ServerProcess] = []

    def make(config: str | None = None, *args: str, **kwargs: Any) -> ServerProcess:
        data_dir = tmp_path_factory.mktemp("pp") / "data"
        if kwargs.get("auth", True) and kwargs.get("token_scope", "admin") and \
                "token" not in kwargs:
            # The admin token the fixture would make with `pinpanel token create`, made
            # here instead: a Python start-up less per server (tests/security/test_tokens.py
            # tests the command itself).
            with contextlib.closing(Store.open(data_dir)) as store:
                kwargs["token"] = auth.create_token(store, "tests", "admin")
        server = ServerProcess(data_dir, config, tuple(args), **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()


@dataclass
class Session:
    """A browser login: the cookie's session id and the page's CSRF token."""

    cookie: str
    csrf: str

    @property
    def header(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.cookie}"}


def browser_session(server: ServerProcess, token: str) -> Session:
    """POST /login as a browser would after the login link, then read the page's CSRF."""
    with httpx.Client(base_url=server.url, verify=False, timeout=10) as http:
        response = http.post("/login", data={"token": token, "next": "/"})
        assert response.status_code == 303, response.text
        cookie = response.cookies[SESSION_COOKIE]
        page = http.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        found = CSRF_META.search(page.text)
        assert found and found.group(1), "the page has no csrf-token meta"
        return Session(cookie, found.group(1))


def revoke(server: ServerProcess, name: str) -> None:
    """``pinpanel token revoke``: another process, as an operator at the shell would."""
    done = run_cli("token", "revoke", name, "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def opened_store(server: ServerProcess) -> Iterator[Store]:
    """The server's database opened from this (other) process, as the CLI does, but without
    paying a Python start-up per token."""
    store = Store.open(server.data_dir)
    try:
        yield store
    finally:
        store.close()


def make_tokens(server: ServerProcess, **scopes: str) -> dict[str, str]:
    """name=scope, ... -> name: token, made in the server's database while it runs."""
    with opened_store(server) as store:
        return {name: auth.create_token(store, name, scope) for name, scope in scopes.items()}


def pin_snapshot(server: ServerProcess, http: httpx.Client | None = None) -> dict[str, Any]:
    """Every pin's state and seq, read with the server's own admin token (a trusted read)."""
    if http is None:
        with server.client() as own:
            return pin_snapshot(server, own)
    body = http.get("/api/v1/pins").json()
    return {"seq": body["seq"],
            "pins": {p["pin"]: (p["state"], p["seq"]) for p in body["pins"]}}


def is_security_refusal(response: httpx.Response) -> bool:
    """A 401/403/429 problem document: the security layer said no (routes' own 401s are
    HTML, such as the login form's)."""
    return response.status_code in (401, 403, 429) and \
        response.headers.get("content-type", "").startswith("application/problem+json")
