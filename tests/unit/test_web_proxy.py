"""The forwarded-header middleware in process: whom it believes, what it rewrites, and
that no header, however malformed, gets past it as an exception."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from pinpanel.web.proxy import (
    ForwardedHeaders,
    parse_address,
    parse_forwarded,
    parse_networks,
)

PROXIES = ("127.0.0.1", "::1", "10.0.0.0/8")


async def seen(headers: dict[str, str] | list[tuple[str, str]], peer: str = "127.0.0.1",
               kind: str = "http", trusted: tuple[str, ...] = PROXIES) -> dict[str, Any]:
    """The scope the app behind the middleware gets for a request with these headers."""
    got: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.update(scope)

    items = headers.items() if isinstance(headers, dict) else headers
    scope = {"type": kind, "scheme": "ws" if kind == "websocket" else "http",
             "client": (peer, 50123), "server": ("127.0.0.1", 8080),
             "headers": [(b"host", b"127.0.0.1:8080"),
                         *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items)]}

    async def receive() -> Any:
        raise AssertionError("not read")

    async def send(message: Any) -> None:
        raise AssertionError("not sent")

    await ForwardedHeaders(app, trusted=trusted)(scope, receive, send)
    return got


def host_of(scope: dict[str, Any]) -> bytes:
    hosts = [v for k, v in scope["headers"] if k == b"host"]
    assert len(hosts) == 1
    return bytes(hosts[0])


NGINX = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
         "X-Forwarded-Host": "pins.example.org"}


async def test_a_trusted_proxy_rewrites_scheme_client_host_and_server() -> None:
    scope = await seen(NGINX)
    assert scope["scheme"] == "https"
    assert scope["client"] == ("203.0.113.7", 0)
    assert host_of(scope) == b"pins.example.org"
    assert scope["server"] == ("pins.example.org", 443)


async def test_an_ipv6_loopback_proxy_is_trusted_by_default_and_ports_are_kept() -> None:
    scope = await seen({**NGINX, "X-Forwarded-Host": "[2001:db8::1]:8443"}, peer="::1",
                       trusted=("127.0.0.1", "::1"))
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["server"] == ("2001:db8::1", 8443)
    assert host_of(scope) == b"[2001:db8::1]:8443"


@pytest.mark.parametrize("peer", ["192.168.1.20", "10.0.0.1.5", "unknown", "::2"])
async def test_headers_from_any_other_peer_change_nothing(peer: str) -> None:
    forged = {**NGINX, "Forwarded": "for=198.51.100.1;proto=https;host=evil.example"}
    scope = await seen(forged, peer=peer, trusted=("127.0.0.1", "::1"))
    assert scope["scheme"] == "http"
    assert scope["client"] == (peer, 50123)
    assert host_of(scope) == b"127.0.0.1:8080"
    assert scope["server"] == ("127.0.0.1", 8080)


async def test_a_peer_without_an_address_is_not_trusted() -> None:
    got: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.update(scope)

    scope = {"type": "http", "scheme": "http", "client": None, "server": None,
             "headers": [(b"x-forwarded-proto", b"https")]}
    await ForwardedHeaders(app)(scope, None, None)  # type: ignore[arg-type]
    assert got["scheme"] == "http" and got["client"] is None


async def test_the_rightmost_untrusted_address_of_the_chain_is_the_client() -> None:
    # The browser wrote 6.6.6.6 itself; the edge proxy (10.0.0.5) saw 203.0.113.7.
    scope = await seen({"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.5"})
    assert scope["client"] == ("203.0.113.7", 0)


async def test_repeated_header_lines_form_one_chain() -> None:
    scope = await seen([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.7"),
                        ("X-Forwarded-For", "10.0.0.5")])
    assert scope["client"] == ("203.0.113.7", 0)


async def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    scope = await seen({"X-Forwarded-For": "10.1.1.1, 10.0.0.5"})
    assert scope["client"] == ("10.1.1.1", 0)


@pytest.mark.parametrize(("chain", "client"), [
    ("garbage, 10.0.0.5", ("10.0.0.5", 0)),  # the last believed proxy, not the garbage
    ("203.0.113.7, unknown", None),  # nothing believable: the peer stays the client
    ("", None),
    (" , ,", None),
    ("203.0.113.7:4711", ("203.0.113.7", 0)),  # some proxies add the port
    ("[2001:db8::7]:4711", ("2001:db8::7", 0)),
    ("2001:db8::7", ("2001:db8::7", 0)),
    ("::ffff:203.0.113.7", ("203.0.113.7", 0)),
])
async def test_addresses_that_are_not_ip_addresses_end_the_walk(
        chain: str, client: tuple[str, int] | None) -> None:
    scope = await seen({"X-Forwarded-For": chain})
    assert scope["client"] == (client or ("127.0.0.1", 50123))


async def test_scheme_and_host_lists_are_read_at_the_chosen_hop() -> None:
    # CDN (TLS, 10.0.0.9) -> proxy (10.0.0.5) -> pinpanel: each appended what it saw.
    scope = await seen({"X-Forwarded-For": "203.0.113.7, 10.0.0.9",
                        "X-Forwarded-Proto": "https, http",
                        "X-Forwarded-Host": "pins.example.org, internal:8080"})
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"
    assert host_of(scope) == b"pins.example.org"


@pytest.mark.parametrize("proto", ["ftp", "javascript", "", "https;x", "HTTPS"])
async def test_only_http_and_https_are_schemes(proto: str) -> None:
    scope = await seen({"X-Forwarded-Proto": proto})
    assert scope["scheme"] == ("https" if proto == "HTTPS" else "http")


@pytest.mark.parametrize("host", ["evil.example/path", "a b", "", "x@y", "[::1", "h:port",
                                  "-", "a" * 300, "host:123456"])
async def test_a_forwarded_host_that_is_not_a_host_is_ignored(host: str) -> None:
    scope = await seen({"X-Forwarded-Host": host})
    assert host_of(scope) == b"127.0.0.1:8080"
    assert scope["server"] == ("127.0.0.1", 8080)


async def test_a_websocket_behind_tls_becomes_wss() -> None:
    scope = await seen({"X-Forwarded-Proto": "https"}, kind="websocket")
    assert scope["scheme"] == "wss"


# -- RFC 7239 Forwarded ---------------------------------------------------------------------


async def test_forwarded_is_read_per_element() -> None:
    scope = await seen({"Forwarded": 'for=6.6.6.6;proto=http, For="[2001:db8:cafe::17]:4711";'
                                     'Proto=https;host="pins.example.org:8443", for=10.0.0.5'})
    assert scope["client"] == ("2001:db8:cafe::17", 0)
    assert scope["scheme"] == "https"  # from the client's own hop, not the forged one
    assert host_of(scope) == b"pins.example.org:8443"
    assert scope["server"] == ("pins.example.org", 8443)


async def test_forwarded_without_for_still_gives_scheme_and_host() -> None:
    scope = await seen({"Forwarded": "proto=https;host=pins.example.org"})
    assert scope["scheme"] == "https" and scope["client"] == ("127.0.0.1", 50123)
    assert host_of(scope) == b"pins.example.org"


@pytest.mark.parametrize("value", ["for=unknown", 'for="_hidden";proto=https',
                                   "for=_a, for=10.0.0.5"])
async def test_obfuscated_and_unknown_nodes_are_not_addresses(value: str) -> None:
    scope = await seen({"Forwarded": value})
    expected = ("10.0.0.5", 0) if "10.0.0.5" in value else ("127.0.0.1", 50123)
    assert scope["client"] == expected


async def test_x_forwarded_headers_win_over_forwarded() -> None:
    # nginx and Caddy set X-Forwarded-* and pass a client's own Forwarded through.
    scope = await seen({"X-Forwarded-For": "203.0.113.7",
                        "Forwarded": "for=6.6.6.6;proto=https;host=evil.example"})
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "http" and host_of(scope) == b"127.0.0.1:8080"


@pytest.mark.parametrize("value", [
    "for=1.2.3.4 proto=https",  # no separator
    "for=1.2.3.4;for=5.6.7.8",  # a parameter twice in one element
    'for="1.2.3.4',  # unterminated quote
    "for",
    "=x",
    "for=1.2.3.4;proto=https;host=a b",
    "   ",
    'for=1.2.3.4;proto="https',
])
async def test_a_malformed_forwarded_is_ignored_entirely(value: str) -> None:
    scope = await seen({"Forwarded": value})
    assert scope["client"] == ("127.0.0.1", 50123) and scope["scheme"] == "http"
    assert host_of(scope) == b"127.0.0.1:8080"


def test_the_forwarded_grammar() -> None:
    assert parse_forwarded('for=a;;proto=b, , FOR="\\"q\\", x" ;by=c,') == [
        {"for": "a", "proto": "b"}, {"for": '"q", x', "by": "c"}]
    assert parse_forwarded(",") == []
    assert parse_forwarded("for=a b") is None


def test_addresses_as_proxies_write_them() -> None:
    assert parse_address(" 10.0.0.1:80 ") == ipaddress.ip_address("10.0.0.1")
    assert parse_address("[::1]") == ipaddress.ip_address("::1")
    for bad in ("[::1]x", "[::1]:", "[::1", "1.2.3.4:x", "host", "", "[]", "1.2.3.4:80:80"):
        assert parse_address(bad) is None, bad


def test_allowed_proxies_are_addresses_or_networks_and_never_a_wildcard() -> None:
    networks = parse_networks(["127.0.0.1", "::1", " 10.1.2.3/8 ", "fd00::/8"])
    assert [str(n) for n in networks] == ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "fd00::/8"]
    for bad in ("*", "localhost", "10.0.0.0/33", ""):
        with pytest.raises(ValueError, match="not an IP address or network"):
            parse_networks([bad])


async def test_no_header_value_makes_the_middleware_raise() -> None:
    """Random and hostile values from a trusted peer: each is applied or ignored, quietly."""
    pieces = ["for=", "proto=", "host=", '"', "\\", ";", ",", " ", "[", "]", ":", "=",
              "1.2.3.4", "::1", "_x", "unknown", "https", "\x00", "\xff", "a" * 50, "%",
              "10.0.0.5", "by=", "\t"]
    rng = random.Random(7239)
    names = ["Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"]
    for _ in range(2000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        scope = await seen([(rng.choice(names), value), (rng.choice(names), value)])
        assert scope["scheme"] in ("http", "https")
        assert isinstance(scope["client"][0], str)
        host = host_of(scope).decode("latin-1")
        assert host == "127.0.0.1:8080" or " " not in host
