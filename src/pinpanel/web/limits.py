"""A cap on the request line and headers, whichever HTTP parser uvicorn uses.

The body limit is ``server.max_body_bytes`` (413, in ``bodies.py`` and the security layer).
Headers are read by uvicorn before any of pinpanel runs. With h11 (armv7l Pis, where
httptools has no wheel) the cap is uvicorn's ``h11_max_incomplete_event_size``. httptools
(x86_64 and aarch64) has no such cap at all: it buffers a header of any size, so a client
could make a Pi Zero hold megabytes per connection. :class:`LimitedHttpTools` counts the
bytes that arrive before the end of the headers and answers 431 past the cap.

The same protocol also hands uvicorn a :class:`CoalescedTransport`, so an answer's head and
body leave in one syscall instead of two (#21).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

#: Request line plus headers; browsers send 1-2 KiB, a login cookie adds 60 bytes.
MAX_HEADER_BYTES = 16 * 1024
TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
             b"content-length: 32\r\nconnection: close\r\n\r\n"
             b"request headers are too large.\r\n")


def protocol_options() -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments that cap header size for the parser in use."""
    options: dict[str, Any] = {"h11_max_incomplete_event_size": MAX_HEADER_BYTES}
    limited = _httptools_protocol()
    if limited is not None:
        options["http"] = limited
    return options


class CoalescedTransport:
    """A connection's transport whose writes of one loop turn leave as one ``writelines``.

    uvicorn writes an answer's status line and headers, then its body, each with its own
    ``write``: two ``send`` syscalls, two TCP segments (and on loopback the receiver's side
    of both runs in this process too). A head (a write that starts with ``HTTP/``) is held
    here until the next write, which goes out with it in one ``writev``, or until the
    loop's next turn (``call_soon``), whichever comes first. Any other write goes out at
    once, so a stream's events are not delayed (holding each of a thousand streams' events
    to the turn's end made every delivery wait for the whole fan-out). Closing writes what
    is held first. Everything else is the transport's own.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif data.startswith(b"HTTP/"):  # an answer's head: its body follows at once
            self._held = data
            self._loop.call_soon(self.flush)
        else:  # a body on its own (a stream's next event): out now, as before
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held (a no-op when the next write took it along, or when the
        connection went away meanwhile: the transport would refuse the write)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        closing: bool = self._transport.is_closing()
        return closing

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _httptools_protocol() -> type | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools here: uvicorn uses h11, capped by the option above
        return None

    class LimitedHttpTools(HttpToolsProtocol):
        """httptools, refusing a request whose headers pass :data:`MAX_HEADER_BYTES`.

        Counted before parsing, up to the blank line that ends the headers, so a header
        sent in one piece is caught as well as one dripped in over many packets.
        """

        _head_bytes = 0
        _in_head = True

        def connection_made(self, transport: Any) -> None:
            # Duck-typed: the protocol calls write, close, is_closing, pause/resume_reading
            # and get_extra_info, all there.
            super().connection_made(cast(asyncio.Transport,
                                         CoalescedTransport(transport, self.loop)))

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True  # a keep-alive connection's next request starts

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                end = data.find(b"\r\n\r\n")
                self._head_bytes += len(data) if end < 0 else end + 4
                if self._head_bytes > MAX_HEADER_BYTES:
                    if not self.transport.is_closing():
                        self.transport.write(TOO_LARGE)
                        self.transport.close()
                    return
            super().data_received(data)

    return LimitedHttpTools
