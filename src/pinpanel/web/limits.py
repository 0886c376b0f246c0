"""A cap on the request line and headers, whichever HTTP parser uvicorn uses.

The body limit is ``server.max_body_bytes`` (413, in ``bodies.py`` and the security layer).
Headers are read by uvicorn before any of pinpanel runs. With h11 (armv7l Pis, where
httptools has no wheel) the cap is uvicorn's ``h11_max_incomplete_event_size``. httptools
(x86_64 and aarch64) has no such cap at all: it buffers a header of any size, so a client
could make a Pi Zero hold megabytes per connection. :class:`LimitedHttpTools` counts the
bytes that arrive before the end of the headers and answers 431 past the cap.
"""

from __future__ import annotations

from typing import Any

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
