"""A stand-in HomeKit bridge for the web's tests, and a way to put an in-process app on HTTP.

:class:`FakeHomeKit` implements :class:`pinpanel.web.homekit.HomeKitPanel` as the HomeKit
adapter's bridge does (the page tests need no HAP stack): its setup payload is built by the
HAP rules (version, category, flags and code packed into 45 bits, base 36, then the setup
id), so the QR code a test decodes is a real one. It records every unpair asked of it.

:func:`served` runs an :class:`~tests.inprocess.InProcessApp` under uvicorn on a free
loopback port, on the app's own loop, for Chromium (which needs a socket): the app then
keeps the fake that a test inspects, which a separate process could not share.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import uvicorn

from tests.inprocess import InProcessApp

#: HAP's accessory category of a bridge, and the "IP transport" flag of the payload.
CATEGORY_BRIDGE = 2
FLAG_IP = 2
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def setup_payload(code: str, setup_id: str, category: int = CATEGORY_BRIDGE) -> str:
    """The ``X-HM://`` setup payload of ``code`` (``123-45-678``) and a 4-character id."""
    value = (category << 31) | (FLAG_IP << 27) | int(code.replace("-", ""))
    digits = ""
    while value:
        value, rest = divmod(value, 36)
        digits = BASE36[rest] + digits
    return "X-HM://" + digits.rjust(9, "0") + setup_id


@dataclass
class FakeHomeKit:
    """A HomeKitPanel with pairings in a dict (id -> admin) and their names."""

    name: str = "pinpanel Garden"
    port: int = 51826
    code: str = "031-45-154"
    setup_id: str = "PNPL"
    pairings: dict[str, bool] = field(default_factory=dict)
    unpaired: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    def setup_code(self) -> str:
        return self.code

    def setup_uri(self) -> str:
        return setup_payload(self.code, self.setup_id)

    def controllers(self) -> list[tuple[str, bool, str]]:
        return [(pairing, admin, self.names.get(pairing, ""))
                for pairing, admin in self.pairings.items()]

    async def rename(self, controller_id: str, name: str) -> bool:
        if controller_id not in self.pairings:
            return False
        self.names[controller_id] = name
        return True

    async def unpair(self, controller_id: str) -> bool:
        self.unpaired.append(controller_id)
        return self.pairings.pop(controller_id, None) is not None


@contextlib.contextmanager
def served(app: InProcessApp) -> Iterator[str]:
    """Serve the running in-process app over HTTP on 127.0.0.1; yields its URL."""
    assert app.portal is not None and app.app is not None, "the app is not started"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app.app, lifespan="off", log_level="warning"))

    async def wait_started() -> None:
        while not server.started and not future.done():
            await anyio.sleep(0.01)

    future = app.portal.start_task_soon(server.serve, [sock])
    try:
        app.portal.call(wait_started)
        assert server.started, future.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        future.result(timeout=30)
        sock.close()
