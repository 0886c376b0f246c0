"""Home Assistant device-based discovery: one device per Pi, one component per pin.

One retained message on ``<prefix>/device/pinpanel_<device_id>/config`` describes the
whole Pi: ``dev`` (the device, identified by ``pinpanel_<device_id>``), ``o`` (origin:
pinpanel and its version), the shared availability topic and QoS, and ``cmps``: a
``switch`` per output and a ``binary_sensor`` per input, keyed by pin id, each with a
``unique_id`` of ``pinpanel_<device_id>_<pin id>``. Both ids derive from configuration only,
so they are the same after every restart and Home Assistant keeps its entity settings.

Removing a pin needs memory of what was published before. pinpanel keeps that in its own
database (the ``meta`` table, key :data:`RECORD_KEY`) rather than reading the retained
message back from the broker: reading back would need a timeout to decide "nothing is
retained" (MQTT has no end-of-retained marker), a broker without persistence forgets it on
restart, and the database already belongs to this device alone. When a pin has left the
config, the bridge publishes the device payload once with that component reduced to its
platform (``{"p": "switch"}``, which Home Assistant takes as "remove this component"), then
the final payload without it, and clears the pin's retained state and attributes.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from pinpanel import __version__
from pinpanel.config import Config, PinConfig
from pinpanel.mqtt.topics import OFF, OFFLINE, ON, ONLINE, Topics

RECORD_KEY = "mqtt.published"
SWITCH = "switch"
BINARY_SENSOR = "binary_sensor"


def platform_of(pin: PinConfig) -> str:
    return SWITCH if pin.is_output else BINARY_SENSOR


def component(pin: PinConfig, topics: Topics) -> dict[str, Any]:
    """One pin's component: the fields Home Assistant needs, full names for readability."""
    data: dict[str, Any] = {
        "p": platform_of(pin),
        "name": pin.name,
        "unique_id": topics.unique_id(pin.id),
        "state_topic": topics.state(pin.id),
        "json_attributes_topic": topics.attributes(pin.id),
        "payload_on": ON,
        "payload_off": OFF,
    }
    if pin.is_output:
        data["command_topic"] = topics.command(pin.id)
    return data


def device_payload(config: Config, topics: Topics, model: str,
                   removed: dict[str, str] | None = None) -> dict[str, Any]:
    """The device discovery document; ``removed`` (pin id -> platform) marks removals."""
    components: dict[str, Any] = {p.id: component(p, topics) for p in config.pins}
    for pin_id, platform in (removed or {}).items():
        # Only the platform: "remove this component" (a pin that changed mode is removed
        # under its old platform here, and comes back under its new one in the next payload).
        components[pin_id] = {"p": platform}
    return {
        "dev": {"ids": [topics.object_id], "name": f"pinpanel {topics.device_id}",
                "mf": "pinpanel", "mdl": model, "sw": __version__},
        "o": {"name": "pinpanel", "sw": __version__},
        "availability": [{"topic": topics.status, "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        "qos": config.mqtt.qos,
        "cmps": components,
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Published:
    """What this device last told the broker: discovery topic, components, pins with state."""

    topic: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    pins: tuple[str, ...] = ()

    def as_text(self) -> str:
        return json.dumps({"topic": self.topic, "components": self.components,
                           "pins": list(self.pins)}, sort_keys=True)

    @classmethod
    def from_text(cls, text: str | None) -> Published:
        """Parse a stored record; anything unreadable counts as "nothing published"."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            topic = data.get("topic")
            components = {str(k): str(v) for k, v in dict(data.get("components", {})).items()}
            pins = tuple(str(p) for p in data.get("pins", []))
        except (ValueError, TypeError, AttributeError):
            return cls()
        return cls(topic if isinstance(topic, str) else None, components, pins)


def now_published(config: Config, topics: Topics) -> Published:
    discovery = config.mqtt.discovery
    return Published(
        topic=topics.discovery if discovery else None,
        components={p.id: platform_of(p) for p in config.pins} if discovery else {},
        pins=tuple(p.id for p in config.pins),
    )


@dataclass(frozen=True)
class Plan:
    """What to publish on connect to move the broker from ``before`` to ``after``."""

    clear_topics: tuple[str, ...]
    removed_components: dict[str, str]
    stale_pins: tuple[str, ...]


def plan(before: Published, after: Published) -> Plan:
    """Components to remove, old discovery topics to clear, pins whose retained state goes."""
    clear: list[str] = []
    removed: dict[str, str] = {}
    if before.topic and before.topic != after.topic:
        clear.append(before.topic)  # discovery off, or the device/prefix changed
    elif before.topic:
        removed = {cid: platform for cid, platform in before.components.items()
                   if after.components.get(cid) != platform}
    stale = tuple(p for p in before.pins if p not in after.pins)
    return Plan(tuple(clear), removed, stale)


def read_record(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (RECORD_KEY,)).fetchone()
    return None if row is None else str(row[0])


def write_record(text: str) -> Any:
    def work(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (RECORD_KEY, text))

    return work
