"""The fleet's shared words: where mDNS speaks (announcer and hub browser alike)."""

from __future__ import annotations

import pytest

from pinpanel.fleetwire import mdns_interfaces


@pytest.mark.parametrize(("configured", "host", "expected"), [
    # a server on loopback is announced on loopback only: the LAN could not reach it
    ((), "127.0.0.1", ["127.0.0.1"]),
    ((), "::1", ["127.0.0.1"]),
    # a server on one address is announced on that interface
    ((), "192.0.2.7", ["192.0.2.7"]),
    # every interface: the tutorial's 0.0.0.0, or a host name pinpanel cannot place
    ((), "0.0.0.0", None),
    ((), "::", None),
    ((), "garage-pi.local", None),
    ((), "2001:db8::7", None),
    # what [mdns] interfaces names wins
    (("192.0.2.9",), "127.0.0.1", ["192.0.2.9"]),
])
def test_mdns_speaks_where_the_server_can_be_reached(
        configured: tuple[str, ...], host: str, expected: list[str] | None) -> None:
    assert mdns_interfaces(configured, host) == expected
