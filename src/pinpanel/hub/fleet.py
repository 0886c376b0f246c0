"""The hub's picture of the fleet, built only from what the Pis publish.

Pure bookkeeping, no I/O: :meth:`Fleet.apply` takes one MQTT message (topic, payload) and
updates the device it belongs to; the connection (:mod:`pinpanel.hub.link`) feeds it and the
API reads it. A device is known by its base topic. What it is (name, version, page, pins,
groups) comes from its retained ``<base>/device``; whether it is up from ``<base>/status``;
each pin's state, level and seq from ``<base>/<pin>/attributes``; sensor readings from
``<base>/<sensor>/state``. Any of these may arrive first (retained messages come in any
order, and a clustered broker may not hand them over at all until a refresh), so a device
appears with whatever was heard and fills in as the rest arrives.

Changed devices are collected in :attr:`Fleet.dirty` for the stream to send coalesced: with
1,000 Pis each changing a pin every 10 s, a page gets one update per device per flush, not
one per message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pinpanel import fleetwire

#: The longest payload the hub reads as JSON (a device with 28 pins and sensors fits).
MAX_JSON = 64 * 1024


@dataclass
class Device:
    """One pinpanel as the hub has heard it."""

    base: str
    device_id: str
    name: str = ""
    version: str = ""
    url: str = ""
    #: ``online``, ``offline``, ``unreachable`` (said online, but did not answer a refresh:
    #: behind a bridge that is down) or ``unknown`` (heard from, but no status yet).
    status: str = "unknown"
    last_seen: float = 0.0
    described: bool = False
    #: Pins by id: what ``<base>/device`` says, merged with the newest attributes.
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: Where the hub learnt of it: ``mqtt``, ``mdns`` or both.
    sources: set[str] = field(default_factory=set)

    @property
    def online(self) -> bool:
        return self.status == fleetwire.ONLINE

    @property
    def controllable(self) -> bool:
        """Commands go over MQTT: a Pi found only on the LAN is linked, not controlled."""
        return "mqtt" in self.sources

    def as_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id, "base": self.base, "name": self.name or self.device_id,
            "version": self.version, "url": self.url, "status": self.status,
            "online": self.online, "last_seen": _iso(self.last_seen),
            "controllable": self.controllable, "sources": sorted(self.sources),
            "pins": list(self.pins.values()),
            "sensors": list(self.sensors.values()),
            "groups": [{"id": g, "pins": pins} for g, pins in self.groups.items()],
        }


def _iso(moment: float) -> str | None:
    if not moment:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _json(payload: bytes) -> Any:
    if not payload or len(payload) > MAX_JSON:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


class Fleet:
    """Every device heard under the ``bases`` filter (e.g. ``pinpanel/+``)."""

    def __init__(self, bases: str = fleetwire.DEFAULT_BASES,
                 clock: Callable[[], float] = time.time) -> None:
        self.bases = bases.strip("/")
        self._levels = self.bases.count("/") + 1
        self.devices: dict[str, Device] = {}
        self.dirty: dict[str, None] = {}
        self._clock = clock

    @property
    def filters(self) -> tuple[str, ...]:
        """What the hub subscribes to: device, status, pin attributes, sensor states, results."""
        b = self.bases
        return (f"{b}/{fleetwire.DEVICE}", f"{b}/{fleetwire.STATUS}",
                f"{b}/+/{fleetwire.ATTRIBUTES}", f"{b}/+/{fleetwire.STATE}",
                f"{b}/{fleetwire.RESULT}")

    def split(self, topic: str) -> tuple[str, list[str]] | None:
        """(base, the levels after it) of a topic under the filter; None otherwise."""
        parts = topic.split("/")
        if len(parts) <= self._levels:
            return None
        return "/".join(parts[:self._levels]), parts[self._levels:]

    def device(self, base: str, source: str = "mqtt") -> Device:
        found = self.devices.get(base)
        if found is None:
            found = self.devices[base] = Device(base=base, device_id=base.rpartition("/")[2])
        found.sources.add(source)
        return found

    def by_id(self, device_id: str) -> Device | None:
        return next((d for d in self.devices.values() if d.device_id == device_id), None)

    def apply(self, topic: str, payload: bytes) -> bool:
        """Take one message in; True when it changed what the hub shows."""
        where = self.split(topic)
        if where is None:
            return False
        base, rest = where
        if rest == [fleetwire.RESULT]:
            return False  # answers are the commands' business
        if not payload and rest != [fleetwire.STATUS]:
            # A cleared retained message: a pin (or the device) was removed.
            known = self.devices.get(base)
            if known is not None and len(rest) == 2:
                known.pins.pop(rest[0], None)
                self._touch(known)
                return True
            return False
        device = self.device(base)
        changed = False
        if device.status == "unreachable":  # heard again: its last status holds again
            device.status = fleetwire.ONLINE
            changed = True
        if rest == [fleetwire.DEVICE]:
            changed = self._describe(device, _json(payload))
        elif rest == [fleetwire.STATUS]:
            status = payload.decode(errors="replace").strip().lower() or fleetwire.OFFLINE
            changed = status != device.status
            device.status = status if status in (fleetwire.ONLINE, fleetwire.OFFLINE) \
                else "unknown"
        elif len(rest) == 2 and rest[1] == fleetwire.ATTRIBUTES:
            changed = self._pin(device, rest[0], _json(payload))
        elif len(rest) == 2 and rest[1] == fleetwire.STATE and rest[0] in device.sensors:
            changed = self._reading(device, rest[0], _json(payload))
        device.last_seen = self._clock()
        if changed:
            self._touch(device)
        return changed

    def _touch(self, device: Device) -> None:
        self.dirty[device.base] = None

    def _describe(self, device: Device, data: Any) -> bool:
        if not isinstance(data, dict):
            return False
        device.described = True
        device.device_id = str(data.get("device_id") or device.device_id)
        device.name = str(data.get("name") or "")
        device.version = str(data.get("version") or "")
        device.url = str(data.get("url") or "")
        pins: dict[str, dict[str, Any]] = {}
        for pin in data.get("pins") or ():
            if isinstance(pin, dict) and isinstance(pin.get("id"), str):
                held = device.pins.get(pin["id"], {})
                pins[pin["id"]] = {**held, **{k: pin.get(k) for k in
                                             ("id", "name", "pin", "mode", "kind")}}
        device.pins = pins
        device.sensors = {s["id"]: {**device.sensors.get(s["id"], {}), **s}
                          for s in data.get("sensors") or ()
                          if isinstance(s, dict) and isinstance(s.get("id"), str)}
        device.groups = {g["id"]: list(g.get("pins") or ()) for g in data.get("groups") or ()
                         if isinstance(g, dict) and isinstance(g.get("id"), str)}
        return True

    def _pin(self, device: Device, pin_id: str, data: Any) -> bool:
        if not isinstance(data, dict):
            return False
        held = device.pins.setdefault(pin_id, {"id": pin_id})
        seq = data.get("seq")
        if isinstance(seq, int) and isinstance(held.get("seq"), int) and seq < held["seq"]:
            return False  # an older message overtaken by a newer one (a refresh racing)
        for key in ("state", "seq", "changed_at", "level", "angle", "name", "mode", "pin"):
            if key in data:
                held[key] = data[key]
        held.setdefault("kind", "input" if data.get("mode") == "input" else "output")
        return True

    def merge_pin(self, device: Device, pin_id: str, data: dict[str, Any]) -> bool:
        """A pin as a command's answer carried it (it may come before its attributes)."""
        changed = self._pin(device, pin_id, data)
        if changed:
            self._touch(device)
        return changed

    def _reading(self, device: Device, sensor_id: str, data: Any) -> bool:
        if not isinstance(data, dict):
            return False
        device.sensors[sensor_id]["values"] = data
        return True

    def mark_unreachable(self, before: float) -> list[Device]:
        """Pis that said ``online`` but sent nothing since ``before`` (a refresh was asked)."""
        gone = [d for d in self.devices.values()
                if d.status == fleetwire.ONLINE and d.last_seen < before]
        for device in gone:
            device.status = "unreachable"
            self._touch(device)
        return gone

    def now(self) -> float:
        return self._clock()

    def found_on_lan(self, device_id: str, url: str, version: str, base: str) -> None:
        """A pinpanel announced over mDNS: linked (its page), controlled only if on MQTT."""
        known = self.devices.get(base) if base else None
        known = known or self.by_id(device_id)
        if known is None:
            known = self.devices[f"mdns:{device_id}"] = Device(
                base=f"mdns:{device_id}", device_id=device_id, status=fleetwire.ONLINE)
        known.sources.add("mdns")
        known.url = known.url or url
        known.version = known.version or version
        if not known.controllable:
            known.status = fleetwire.ONLINE
            known.last_seen = self._clock()
        self._touch(known)

    def gone_from_lan(self, device_id: str) -> None:
        known = self.devices.get(f"mdns:{device_id}")
        if known is not None:
            known.status = fleetwire.OFFLINE
            self._touch(known)

    def take_dirty(self) -> list[Device]:
        """The devices changed since the last call (each once)."""
        found = [self.devices[b] for b in self.dirty if b in self.devices]
        self.dirty.clear()
        return found

    def snapshot(self) -> list[dict[str, Any]]:
        return [d.as_json() for d in sorted(self.devices.values(), key=lambda d: d.device_id)]
