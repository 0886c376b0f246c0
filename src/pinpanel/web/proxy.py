"""Believing a reverse proxy: the forwarded headers of trusted peers rewrite the request.

Behind a TLS-terminating proxy (nginx, Caddy) pinpanel's socket sees plain HTTP from the
proxy's address. What the browser actually used, ``https`` at ``pins.example.org`` from its
own address, arrives only in headers the proxy adds: ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and ``X-Forwarded-For``, or the standard ``Forwarded`` (RFC 7239).
Anyone can send those headers, so they are believed only when the connection comes from an
address in ``server.forwarded_allow_ips`` (by default loopback only: a proxy on the Pi).

:class:`ForwardedHeaders` runs outermost and rewrites the ASGI scope before anything else
reads it, so every layer sees the browser's view with no proxy awareness of its own: the
security layer checks the forwarded host and compares ``Origin`` with it, the login sets
the cookie ``Secure`` because the scheme is ``https``, failed logins count against the real
client address, the audit log records it, and ``url_for`` builds ``https://`` URLs.

Rules (each chosen to fail closed; a header that does not parse is ignored, never a 500):

- ``X-Forwarded-*`` win over ``Forwarded``: if any ``X-Forwarded-*`` header is present,
  ``Forwarded`` is ignored entirely. The common proxy recipes (nginx's and Caddy's, as the
  README gives them) set the ``X-Forwarded-*`` headers and pass a client's own
  ``Forwarded`` through untouched, so believing it first would let the client choose.
- The client is the **rightmost untrusted** address of the chain: walking from the right,
  addresses of trusted proxies are skipped and the first other one is the client (entries
  further left were written by that client and prove nothing). If every entry is trusted,
  the leftmost is. An entry that is not an IP address (``unknown``, an obfuscated
  ``_name``, garbage) ends the walk: the client is then the last proxy that was believed,
  or the peer itself.
- Scheme and host come from the same hop as the client (``Forwarded`` keeps a hop's
  ``for``, ``proto`` and ``host`` in one element; comma lists of ``X-Forwarded-Proto`` and
  ``-Host`` are read at the same position from the right as the chosen address, or their
  leftmost entry when shorter). Only ``http`` and ``https`` are accepted as a scheme, and a
  host must be a host name or IP literal with an optional port.

uvicorn's own ``proxy_headers`` stay off (see runtime.py): its middleware reads neither
``X-Forwarded-Host`` nor ``Forwarded``, and two layers rewriting the client address would
have to agree on the trust list. No maintained library does this for ASGI (werkzeug's
``ProxyFix`` is WSGI and counts hops instead of checking addresses), so it is written here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Loopback only: a proxy on the same machine. Never every address by default.
DEFAULT_ALLOW = ("127.0.0.1", "::1")

_SCHEMES = frozenset({"http", "https"})
_NAMES = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"})
# A host name (RFC 1123 labels, loosely) or a bracketed IPv6 literal, then an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
                   r"(?::[0-9]{1,5})?")
# RFC 7230 token characters; a part of a Forwarded value: a pair token=token|quoted-string,
# or a separator (``;`` between pairs, ``,`` between elements).
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PART = re.compile(rf"[ \t]*(?:({_TCHAR})=({_TCHAR}|\"(?:[^\"\\]|\\.)*\")|([;,]))[ \t]*")
_UNQUOTE = re.compile(r"\\(.)")
_CACHE_MAX = 1024


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``forwarded_allow_ips`` entries (IP addresses or CIDR networks) as networks.

    Raises ValueError naming the first entry that is neither (``*`` included: trusting
    every peer means anyone can pick their own address, so it must be spelled out as
    ``0.0.0.0/0`` and ``::/0``).
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8); "
                             "to trust every peer, which lets anyone set their own address, "
                             "write 0.0.0.0/0 and ::/0") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, ``ip:port`` or ``[v6]:port``; else None."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else "x"
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 for the trust check
    return address


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """RFC 7239 ``Forwarded`` as one dict per element (keys lowercased, quotes removed).

    Empty elements and pairs are allowed, as the grammar allows them; anything else that
    does not parse makes the whole value None: a half-understood chain is not believed.
    """
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    pos, need_separator = 0, False
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None:
            return None
        pos = match.end()
        name, raw, separator = match.groups()
        if separator is not None:
            need_separator = False
            if separator == "," and element:
                elements.append(element)
                element = {}
            continue
        name = name.lower()
        if need_separator or name in element:  # a parameter twice is invalid (RFC 7239, 4)
            return None
        element[name] = _UNQUOTE.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
        need_separator = True
    if element:
        elements.append(element)
    return elements


@dataclass(frozen=True)
class Hop:
    """What the proxy nearest the browser saw: the client, the scheme and the host used."""

    client: Address | None = None
    scheme: str | None = None
    host: str | None = None


def _header_list(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[str] | None:
    """All values of a comma-list header (repeated lines joined), or None if absent."""
    values = [v.decode("latin-1") for k, v in headers if k == name]
    if not values:
        return None
    return [item.strip() for item in ",".join(values).split(",")]


def _walk(addresses: Sequence[str | None], trusted: Callable[[Address], bool],
          ) -> tuple[Address | None, int]:
    """The rightmost untrusted address and its offset from the right (0 when none)."""
    client, offset = None, 0
    for index, text in enumerate(reversed(addresses)):
        address = parse_address(text) if text is not None else None
        if address is None:
            break
        client, offset = address, index
        if not trusted(address):
            break
    return client, offset


def _at(values: list[str] | None, offset: int) -> str | None:
    if not values:
        return None
    return values[max(0, len(values) - 1 - offset)]


def read_hop(headers: Sequence[tuple[bytes, bytes]], trusted: Callable[[Address], bool],
             ) -> Hop:
    """The browser's side of the request from a trusted proxy's headers (see module doc)."""
    headers = [(k, v) for k, v in headers if k in _NAMES]  # one pass; mostly none at all
    if not headers:
        return Hop()
    forwarded_for = _header_list(headers, b"x-forwarded-for")
    protos = _header_list(headers, b"x-forwarded-proto")
    hosts = _header_list(headers, b"x-forwarded-host")
    if forwarded_for is not None or protos is not None or hosts is not None:
        client, offset = _walk(forwarded_for or [], trusted)
        scheme, host = _at(protos, offset), _at(hosts, offset)
    else:
        raw = [v.decode("latin-1") for k, v in headers if k == b"forwarded"]
        elements = parse_forwarded(",".join(raw)) if raw else None
        if not elements:
            return Hop()
        client, offset = _walk([e.get("for") for e in elements], trusted)
        element = elements[len(elements) - 1 - offset]
        scheme, host = element.get("proto"), element.get("host")
    if scheme is not None:
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            scheme = None
    if host is not None and _HOST.fullmatch(host) is None:
        host = None
    return Hop(client, scheme, host)


def _split_host(host: str, scheme: str) -> tuple[str, int]:
    default = 443 if scheme in ("https", "wss") else 80
    if host.startswith("["):
        name, _, port = host[1:].partition("]")
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port else default


class ForwardedHeaders:
    """Pure ASGI middleware: from a trusted peer, apply its forwarded headers to the scope."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[str] = DEFAULT_ALLOW) -> None:
        self.app = app
        self.networks = parse_networks(trusted)
        self._peers: dict[str, bool] = {}

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def trusted_peer(self, host: str) -> bool:
        """Whether the connection's peer address (as the server gives it) is a trusted proxy."""
        known = self._peers.get(host)
        if known is None:
            address = parse_address(host)
            known = address is not None and self.trusts(address)
            if len(self._peers) >= _CACHE_MAX:
                self._peers.clear()
            self._peers[host] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and self.trusted_peer(str(peer[0])):
                self.apply(scope, read_hop(scope["headers"], self.trusts))
        await self.app(scope, receive, send)

    @staticmethod
    def apply(scope: Scope, hop: Hop) -> None:
        """Rewrite ``scope`` in place: scheme, client, ``Host`` header and server."""
        if hop.scheme is not None:
            secure = hop.scheme == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = hop.scheme
        if hop.client is not None:
            scope["client"] = (str(hop.client), 0)
        if hop.host is not None:
            scope["headers"] = [*((k, v) for k, v in scope["headers"] if k != b"host"),
                                (b"host", hop.host.encode("latin-1"))]
            scope["server"] = _split_host(hop.host, scope["scheme"])
