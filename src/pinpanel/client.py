"""A small typed client for a pinpanel server: the v1 API and its event stream.

Standard library only (``urllib`` and a line-by-line Server-Sent Events parser) and nothing
from the rest of pinpanel, so it imports in milliseconds on a Pi Zero and a script can copy
this one file anywhere::

    from pinpanel.client import Client

    pp = Client("http://pi.local:8080", token="pp_...")
    pp.on("garage")                      # -> Pin(pin=17, id='garage', state=True, seq=8, ...)
    for event in pp.events():            # snapshot first, then one event per change
        print(event.kind, event.seq)

Every failure is a :class:`ClientError` whose class says what went wrong (refused
credentials, unknown pin, a conflict with the pin's mode, a rejected value, an unreachable
or failing server); ``pinpanel``'s command line turns each into its own exit code.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import IO, Any

DEFAULT_URL = "http://localhost:8080"
#: The server sends a keep-alive comment at least every 15 s; silence this long means gone.
STREAM_TIMEOUT_S = 60.0


# -- errors ---------------------------------------------------------------------------------------


class ClientError(Exception):
    """A request to a pinpanel server failed; ``status`` is the HTTP status, if any.

    The root of this module's errors, and deliberately not a ``pinpanel.errors`` class: this
    file imports nothing from pinpanel, so it works copied on its own.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClientConfigError(ClientError, ValueError):
    """The client was given an unusable server URL."""


class ServerUnreachableError(ClientError, ConnectionError):
    """No answer: the server is down, the address is wrong, or the network is."""


class ServerError(ClientError):
    """The server answered with an error of its own (5xx) or something unexpected."""


class AuthRefusedError(ClientError, PermissionError):
    """401 or 403: no token, a bad or revoked token, or one without the needed scope."""


class NotFoundError(ClientError, LookupError):
    """404: no configured pin by that number or id (or no such route)."""


class ConflictError(ClientError):
    """409: the pin's mode does not allow it (switching an input)."""


class RejectedError(ClientError, ValueError):
    """400, 413, 415 or 422: the server refused the request's values."""


_ERROR_BY_STATUS: dict[int, type[ClientError]] = {
    400: RejectedError, 401: AuthRefusedError, 403: AuthRefusedError, 404: NotFoundError,
    409: ConflictError, 413: RejectedError, 415: RejectedError, 422: RejectedError,
}


# -- what the server reports -------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """One pin as the API reports it (``GET /api/v1/pins/{pin}``)."""

    pin: int
    id: str
    name: str
    mode: str
    state: bool
    active_low: bool = False
    seq: int = 0
    changed_at: str | None = None
    pulse_until: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pin:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Event:
    """One event of ``GET /api/v1/events``: ``snapshot`` or ``change`` (others pass through)."""

    kind: str
    data: Any
    id: str | None = None
    pins: tuple[Pin, ...] = field(default=(), repr=False)

    @property
    def seq(self) -> int | None:
        return int(self.id) if self.id and self.id.isdecimal() else None

    @property
    def pin(self) -> Pin | None:
        """The changed pin, for a ``change`` event."""
        if self.kind == "change" and isinstance(self.data, dict):
            return Pin.from_json(self.data["pin"])
        return None


def parse_sse(lines: Iterator[bytes]) -> Iterator[Event]:
    """Server-Sent Events from raw lines, as the HTML standard parses them."""
    kind, event_id = "", None
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                pins: tuple[Pin, ...] = ()
                if kind == "snapshot" and isinstance(payload, dict):
                    pins = tuple(Pin.from_json(p) for p in payload.get("pins", []))
                yield Event(kind or "message", payload, event_id, pins)
            kind, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value


# -- the client --------------------------------------------------------------------------------


class Client:
    """A pinpanel server at ``url``; ``token`` is sent as ``Authorization: Bearer``."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, *,
                 timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientConfigError(
                f"server URL must look like http://HOST:PORT, got {url!r}")
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"),
                                            "", ""))
        self.token = token or None
        self.timeout = timeout
        self._ssl = ssl_context

    # -- API v1 --

    def pins(self) -> list[Pin]:
        """Every configured pin."""
        return [Pin.from_json(p) for p in self._json("GET", "/api/v1/pins")["pins"]]

    def pin(self, ref: int | str) -> Pin:
        """One pin by BCM number or id."""
        return Pin.from_json(self._json("GET", self._pin_path(ref)))

    def on(self, ref: int | str) -> Pin:
        return self._switch(ref, "on")

    def off(self, ref: int | str) -> Pin:
        return self._switch(ref, "off")

    def toggle(self, ref: int | str) -> Pin:
        return self._switch(ref, "toggle")

    def set(self, ref: int | str, state: bool) -> Pin:
        """Set an output on (True) or off (False)."""
        return Pin.from_json(self._json("PUT", self._pin_path(ref), {"state": bool(state)}))

    def pulse(self, ref: int | str, ms: int | None = None) -> Pin:
        """On now, off after ``ms`` (default: the pin's own pulse length)."""
        body = None if ms is None else {"ms": ms}
        return Pin.from_json(self._json("POST", self._pin_path(ref) + "/pulse", body))

    def system(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/api/v1/system")
        return result

    def events(self, last_event_id: int | None = None) -> Iterator[Event]:
        """The live event stream: a snapshot (or the changes missed since
        ``last_event_id``), then one ``change`` per committed change. Ends when the
        server closes the stream; raises :class:`ServerUnreachableError` if it goes silent.
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        response = self._open("GET", "/api/v1/events", None, headers,
                              timeout=max(self.timeout, STREAM_TIMEOUT_S))
        try:
            yield from parse_sse(_lines(response, self.url))
        finally:
            response.close()

    # -- plumbing --

    @staticmethod
    def _pin_path(ref: int | str) -> str:
        text = str(ref).strip()
        if not text:
            raise NotFoundError("a pin number or id is needed")
        return "/api/v1/pins/" + urllib.parse.quote(text, safe="")

    def _switch(self, ref: int | str, action: str) -> Pin:
        return Pin.from_json(self._json("POST", f"{self._pin_path(ref)}/{action}"))

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(method, path, body, {"Accept": "application/json"}) as response:
            raw = response.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise ServerError(f"{self.url}{path} did not answer with JSON") from None

    def _open(self, method: str, path: str, body: Any, headers: dict[str, str], *,
              timeout: float | None = None) -> Any:
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers = {**headers, "Content-Type": "application/json"}
        if self.token:
            headers = {**headers, "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(self.url + path, data=data, headers=headers,  # noqa: S310 - http(s) only, checked in __init__
                                         method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout,  # noqa: S310
                                          context=self._ssl)
        except urllib.error.HTTPError as exc:
            raise _error_of(exc, method, path) from None
        except urllib.error.URLError as exc:
            reason = exc.reason.strerror if isinstance(exc.reason, OSError) and \
                exc.reason.strerror else exc.reason
            raise ServerUnreachableError(f"cannot reach {self.url}: {reason}") from None
        except TimeoutError:
            raise ServerUnreachableError(f"{self.url} did not answer in time") from None
        except OSError as exc:
            raise ServerUnreachableError(f"cannot reach {self.url}: {exc}") from None


def _lines(response: IO[bytes], url: str) -> Iterator[bytes]:
    while True:
        try:
            line = response.readline()
        except TimeoutError:
            raise ServerUnreachableError(f"the event stream of {url} went silent") from None
        except OSError as exc:
            raise ServerUnreachableError(f"the event stream of {url} broke: {exc}") from None
        if not line:
            return
        yield line


def _error_of(exc: urllib.error.HTTPError, method: str, path: str) -> ClientError:
    """The client error for an HTTP error status, with the server's own explanation."""
    status = exc.code
    detail = ""
    try:
        body = json.loads(exc.read() or b"null")
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("Error") or body.get("title") or "")
    except (ValueError, OSError):
        pass
    finally:
        exc.close()
    if not detail:
        detail = f"{method} {path} failed"
    kind = _ERROR_BY_STATUS.get(status, ServerError)
    return kind(f"{detail} (HTTP {status})", status)


__all__ = [
    "AuthRefusedError", "Client", "ClientConfigError", "ClientError", "ConflictError",
    "Event", "NotFoundError", "Pin", "RejectedError", "ServerError", "ServerUnreachableError",
    "parse_sse",
]
