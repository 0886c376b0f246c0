"""What this Pi says about itself on the broker, and how it answers a command with an id.

``<base>/device`` (retained) describes the device once per connection and per refresh:
enough for a hub to list the Pi, link to its page and offer its pins and groups, without
asking the Pi anything over HTTP. ``<base>/result`` answers a command that carried an
``id``: ``ok`` with the seq the change was committed as, or the refusal in one of the words
of :data:`pinpanel.fleetwire.REFUSALS`, so the hub can say "refused (interlock)" rather
than guess from silence.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from pinpanel import __version__, fleetwire
from pinpanel.config import Config
from pinpanel.errors import (
    MqttPayloadError,
    PinModeError,
    PinValueError,
    StoreError,
    UnknownNameError,
    UnknownPinError,
)
from pinpanel.mqtt.topics import Topics
from pinpanel.sensors.model import quantities

_ANY_ADDRESS = ("", "0.0.0.0", "::")


def page_url(config: Config) -> str:
    """The address people open: ``public_url``, else this host's name and the port."""
    server = config.server
    if server.public_url:
        return server.public_url.rstrip("/") + "/"
    scheme = "https" if server.certfile else "http"
    host = socket.gethostname() if server.host in _ANY_ADDRESS else server.host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{server.port}/"


def device_payload(config: Config, topics: Topics, *, url: str | None = None) -> bytes:
    """The retained ``<base>/device`` message (compact JSON, keys of ``DEVICE_KEYS``)."""
    pins = [{"id": p.id, "name": p.name, "pin": p.pin, "mode": p.mode,
             "kind": "output" if p.is_output else "input"} for p in config.pins]
    sensors = [{"id": s.id, "name": s.name or s.id, "kind": s.kind,
                "readings": [q.name for q in quantities(s)]} for s in config.sensors]
    groups = [{"id": g.id, "name": g.name,
               "pins": [p.id for p in config.pins if p.pin in g.pins]}
              for g in config.all_groups()]
    data: dict[str, Any] = {
        "schema": fleetwire.DEVICE_SCHEMA, "device_id": topics.device_id,
        "name": topics.device_id, "version": __version__,
        "url": page_url(config) if url is None else url, "base": topics.base,
        "pins": pins, "sensors": sensors, "groups": groups,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def refusal_of(exc: BaseException) -> fleetwire.Refusal:
    """The one word for why a command was not applied."""
    if isinstance(exc, UnknownPinError):
        return "unknown_pin"
    if isinstance(exc, UnknownNameError):
        return "unknown_group"
    if isinstance(exc, PinModeError):
        return "input"
    if isinstance(exc, PinValueError):
        return "interlock" if "interlock" in str(exc) else "invalid"
    if isinstance(exc, MqttPayloadError):
        return "invalid"
    if isinstance(exc, StoreError):
        return "store"
    return "error"


def ok_payload(ident: str, target: str, seq: int, pins: list[dict[str, Any]]) -> bytes:
    """``ok``: the commit's seq (the highest, for a group) and the pins as they now are."""
    return json.dumps({"id": ident, "target": target, "result": "ok", "seq": seq,
                       "pins": pins}, separators=(",", ":")).encode()


def refused_payload(ident: str, target: str, reason: fleetwire.Refusal,
                    detail: str) -> bytes:
    return json.dumps({"id": ident, "target": target, "result": "refused", "reason": reason,
                       "detail": detail[:200]}, separators=(",", ":")).encode()
