"""Fixtures shared by every suite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess import InProcessApp
from tests.support import ServerProcess


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start pinpanel processes; every one still running is stopped after the test."""
    started: list[ServerProcess] = []

    def make(config: str | None = None, *args: str, auth: bool = True, start: bool = True,
             name: str = "data", **kwargs: object) -> ServerProcess:
        server = ServerProcess(tmp_path / name, config, tuple(args), auth=auth, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[object]:
    """Start the real app in process (tests/inprocess.py); each one is closed after the test.

    Called like ``make_server`` (config text, ``auth``, ``name``, ``token_scope``), for
    web-layer tests whose point is the app's logic, not the process.
    """
    with contextlib.ExitStack() as stack:

        def make(config: str | None = None, *, auth: bool = True, name: str = "data",
                 token_scope: str | None = "admin",  # noqa: S107
                 homekit: object = None) -> InProcessApp:
            app = InProcessApp(tmp_path / name, config, auth=auth, token_scope=token_scope,
                               homekit=homekit)
            return stack.enter_context(app.running())

        yield make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failed test: .ci/run installs every broker and browser."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) skipped; in CI a skip is a failure",
                                red=True)
