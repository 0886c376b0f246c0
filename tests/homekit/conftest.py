"""Fixtures of the HomeKit tests: a HAP-python accessory process and a controller per test."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pinpanel.local_broker import free_port
from tests.homekit.controller import HANG_GUARD, HomeKitController
from tests.support import REPO

SETUP_CODE = "031-45-154"


@dataclass
class HapFixtureServer:
    """tests/homekit/hap_fixture_server.py as a child process, speaking JSON lines.

    ``port`` and ``state`` stay the same across :meth:`stop` and :meth:`start`, so a restart
    is the same accessory (its keys and pairings are in ``state``) at the same address.
    """

    state: Path
    pincode: str = SETUP_CODE
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    _lines: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    stderr: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> HapFixtureServer:
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.homekit.hap_fixture_server", "--port", str(self.port),
             "--state", str(self.state), "--pincode", self.pincode],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self._readers = [threading.Thread(target=self._read, args=(self.proc,), daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc,), daemon=True)]
        for reader in self._readers:
            reader.start()
        self.ready = self.message(lambda m: "ready" in m)["ready"]
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                self._lines.put(json.loads(line))
            except ValueError:
                self._lines.put({"unparsed": line})
        self._lines.put(None)

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.stderr.extend(proc.stderr)

    def message(self, predicate: Callable[[dict[str, Any]], bool],
                timeout: float = HANG_GUARD) -> dict[str, Any]:
        """The next stdout message matching ``predicate`` (earlier ones are dropped)."""
        while True:
            try:
                got = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the HAP fixture sent no matching message in {timeout} s"
                                     ) from None
            if got is None:
                raise AssertionError("the HAP fixture exited: " + "".join(self.stderr)[-3000:])
            if predicate(got):
                return got

    async def amessage(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return await asyncio.to_thread(self.message, predicate)

    def set(self, aid: int, iid: int, value: Any) -> None:
        """Change a value on the accessory's side, as a pin change would."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"set": [aid, iid, value]}) + "\n")
        self.proc.stdin.flush()

    def unpair(self, pairing_id: str) -> None:
        """Remove a controller's pairing on the accessory's side (as pinpanel's page would)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"unpair": pairing_id}) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        """Close stdin (the fixture's clean stop: ``driver.async_stop()``) and wait."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            return proc.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            self._close(proc)

    def kill(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            proc.kill()
            proc.wait()
            self._close(proc)

    def _close(self, proc: subprocess.Popen[str]) -> None:
        for reader in self._readers:
            reader.join(timeout=HANG_GUARD)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def hap_server(tmp_path: Path) -> Iterator[HapFixtureServer]:
    server = HapFixtureServer(tmp_path / "accessory.state").start()
    yield server
    server.kill()


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[HomeKitController]:
    async with HomeKitController(tmp_path) as c:
        yield c
