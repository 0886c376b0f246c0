"""Fixtures shared by every suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start pinpanel processes; every one still running is stopped after the test."""
    started: list[ServerProcess] = []

    def make(config: str | None = None, *args: str, auth: bool = False, start: bool = True,
             name: str = "data", **kwargs: object) -> ServerProcess:
        server = ServerProcess(tmp_path / name, config, tuple(args), auth=auth, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.kill()
