"""A small Server-Sent Events reader for the e2e tests, over httpx's async streaming.

Written for the tests rather than taken from a library so the parsing is exactly the
protocol: fields up to a blank line, ``:`` lines are comments, ``data`` is JSON here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support import ServerProcess


@dataclass
class Event:
    event: str
    id: int | None
    data: Any


@dataclass
class Reader:
    """One open event stream, read in a background task into :attr:`events`."""

    client: httpx.AsyncClient
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    status: int = 0
    ended: bool = False  # the server ended the response cleanly
    error: BaseException | None = None
    task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reader:
        self.task = asyncio.create_task(self._run())
        await self.wait_for(lambda r: r.status != 0 or r.error is not None, "response")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        try:
            async with self.client.stream("GET", "/api/v1/events", headers=self.headers,
                                          params=self.params) as response:
                self.status = response.status_code
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif line:
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
                    else:
                        self._dispatch(fields)
                        fields = {}
                self.ended = True
        except (httpx.HTTPError, OSError) as exc:
            self.error = exc

    def _dispatch(self, fields: dict[str, str]) -> None:
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if "data" in fields:
            ident = fields.get("id")
            self.events.append(Event(fields.get("event", "message"),
                                     int(ident) if ident else None, json.loads(fields["data"])))

    @property
    def changes(self) -> list[Event]:
        return [e for e in self.events if e.event == "change"]

    @property
    def last_id(self) -> int | None:
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1] if ids else None

    async def wait_for(self, predicate: Callable[[Reader], bool], what: str = "condition",
                       timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.error is not None or self.ended or self.status not in (0, 200):
                raise AssertionError(f"stream ended (status {self.status}, {self.error!r}) "
                                     f"while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.events[-3:]}")
            await asyncio.sleep(0.01)

    async def wait_seq(self, seq: int, timeout: float = 30) -> None:
        await self.wait_for(lambda r: (r.last_id or 0) >= seq, f"seq {seq}", timeout)


def auth_headers(server: ServerProcess, token: str | None = None) -> dict[str, str]:
    bearer = token or server.token
    return {"Authorization": f"Bearer {bearer}"} if bearer else {}


def async_client(server: ServerProcess, connections: int = 20, token: str | None = None,
                 ) -> httpx.AsyncClient:
    """An async client for ``server`` with its token (one connection per stream)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(30, read=60),
                             limits=limits, headers=auth_headers(server, token))


def replay(snapshot: dict[str, Any], changes: list[Event]) -> list[dict[int, bool]]:
    """Every state the pins passed through, applying changes in seq order to a snapshot."""
    state = {p["pin"]: p["state"] for p in snapshot["pins"]}
    states = [dict(state)]
    for change in sorted(changes, key=lambda e: e.data["seq"]):
        state[change.data["pin"]["pin"]] = change.data["pin"]["state"]
        states.append(dict(state))
    return states


def raw_request(server: ServerProcess, path: str = "/api/v1/events",
                rcvbuf: int | None = None) -> socket.socket:
    """A bare socket that sends a GET and then does whatever the test wants (or nothing)."""
    sock = socket.socket()
    if rcvbuf is not None:  # a tiny window, so the server's buffers fill quickly
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    head = "".join(f"{k}: {v}\r\n" for k, v in auth_headers(server).items())
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
    return sock
