"""Home Assistant discovery: one retained message per entity, grouped by one device per Pi.

Each pin is an entity: a ``switch`` per output, a ``binary_sensor`` per input, a
``light`` with brightness per pwm pin (a ``fan`` with a percentage when ``ha_type =
"fan"``), a ``number`` per servo (a ``valve`` or ``cover`` with a position when
configured), and a ``button`` per output with a ``pulse_ms`` (pressing it sends ``PULSE``); each
``[[scenes]]`` is a ``scene`` entity (activating it sends ``ON`` to
``<base>/scene/<id>/set``). Each entity's
message goes to ``<prefix>/<platform>/pinpanel_<device_id>/<pin id>/config`` and carries
the device (identified by ``pinpanel_<device_id>``), the origin, the availability topic and
its own ``qos``; the unique id is ``pinpanel_<device_id>_<pin id>`` (``..._pulse`` for a
button). Every id derives from configuration only, so it is the same after every restart and
Home Assistant keeps its entity settings.

Why per-entity rather than device-based discovery (one message for the whole device):
Home Assistant reads device-based messages only from 2024.11 on, and older releases create
no entities from them without a word; per-entity messages are read by every release with
MQTT buttons (2021.12). Device-based discovery saves messages, which matters to a broker
with thousands of entities, not to a Pi with a few pins. The two cannot be published side
by side: the same entity from two discovery topics is a conflict Home Assistant refuses.
Per-entity removal is also plain: an empty retained message on that entity's topic.

An entity reads a single topic, ``<base>/<pin>/attributes``: the state through
``value_template`` and the rest as attributes from the same message, so one change is one
state change (and one history row) in Home Assistant, not one for the state and another
for the attributes.

Removing what left the config needs memory of what was published before. pinpanel keeps
that in its own database (:meth:`Store.read_meta`, key :data:`RECORD_KEY`) rather than
reading the retained messages back from the broker: reading back would need a timeout to
decide "nothing is retained" (MQTT has no end-of-retained marker), a broker without
persistence forgets them on restart, and the database already belongs to this device alone.
A record from before per-entity discovery names the device-based message; :func:`plan`
then hands the entities over with Home Assistant's ``migrate_discovery`` (they keep their
settings), or, when pins also left the config, removes the old device first.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pinpanel import __version__
from pinpanel.config import Config, PinConfig
from pinpanel.mqtt import sensors
from pinpanel.mqtt.topics import OFF, OFFLINE, ON, ONLINE, Topics

RECORD_KEY = "mqtt.published"
SWITCH = "switch"
BINARY_SENSOR = "binary_sensor"
BUTTON = "button"
SCENE = "scene"
PULSE = "PULSE"
#: The state from the pin's JSON (``"state": true``) in the words the entity compares.
VALUE_TEMPLATE = "{{ 'ON' if value_json.state else 'OFF' }}"
#: Published on the old device-based topic: Home Assistant unloads those entities but keeps
#: them in its registry, for the per-entity messages that follow to take over.
MIGRATE = {"migrate_discovery": True}


class Memory(Protocol):
    """Where discovery keeps what it published (the store: :meth:`Store.read_meta`)."""

    def read_meta(self, key: str) -> str | None: ...

    def write_meta(self, key: str, value: str) -> Awaitable[None]: ...


#: A pwm level as Home Assistant's 0-100 brightness or fan percentage.
PERCENT_TEMPLATE = "{{ (value_json.level * 100) | round(0) | int }}"
#: Home Assistant's 0-100 back to a level, for ``<base>/<pin>/level/set``.
LEVEL_COMMAND = "{{ value / 100 }}"


def platform_of(pin: PinConfig) -> str:
    """switch or binary_sensor; a pwm pin light (or fan); a servo number (valve, cover)."""
    if pin.mode == "pwm":
        return pin.ha_type or "light"
    if pin.mode == "servo":
        return pin.ha_type or "number"
    return SWITCH if pin.is_output else BINARY_SENSOR


def _position(pin: PinConfig) -> tuple[str, str]:
    """A servo's angle as a 0-100 position (0 at min_angle) and a position back to it."""
    low, span = pin.min_angle, pin.max_angle - pin.min_angle
    state = (f"{{{{ (((value_json.angle - ({low})) / ({span})) * 100) | round(0) | int "
             "if value_json.angle is not none else 'None' }}")
    return state, f"{{{{ ({low}) + ({span}) * VALUE / 100 }}}}"


def _levelled(pin: PinConfig, topics: Topics) -> dict[str, Any]:
    """What a pwm pin's light or fan, or a servo's number, valve or cover says.

    Every one reads the pin's one attributes topic; levels are sent on ``level/set`` and
    angles on ``angle/set``, on/off on the pin's ``set`` (where ON is brightness memory).
    """
    pin_json = topics.attributes(pin.id)
    platform = platform_of(pin)
    if platform in ("light", "fan"):
        data: dict[str, Any] = {
            "command_topic": topics.command(pin.id), "payload_on": ON, "payload_off": OFF,
            "state_topic": pin_json, "state_value_template": VALUE_TEMPLATE}
        level_set = topics.value_command(pin.id, "level")
        if platform == "light":
            return data | {
                "brightness_command_topic": level_set, "brightness_scale": 100,
                "brightness_command_template": LEVEL_COMMAND,
                "brightness_state_topic": pin_json,
                "brightness_value_template": PERCENT_TEMPLATE,
                # turning on at a brightness sends only the brightness, not ON as well
                "on_command_type": "brightness"}
        return data | {
            "percentage_command_topic": level_set,
            "percentage_command_template": LEVEL_COMMAND,
            "percentage_state_topic": pin_json,
            "percentage_value_template": PERCENT_TEMPLATE,
            "speed_range_min": 1, "speed_range_max": 100}
    angle_set = topics.value_command(pin.id, "angle")
    if platform == "number":
        low, high = sorted((pin.min_angle, pin.max_angle))
        return {"command_topic": angle_set, "state_topic": pin_json,
                # a detached servo is "None": Home Assistant's reset payload, state unknown
                "value_template": "{{ value_json.angle }}",
                "min": low, "max": high, "step": 1, "unit_of_measurement": "°",
                "mode": "slider"}
    state, command = _position(pin)
    if platform == "valve":
        return {"command_topic": angle_set,
                "command_template": command.replace("VALUE", "value"),
                "reports_position": True, "position_open": 100, "position_closed": 0,
                "state_topic": pin_json, "value_template": state}
    return {"set_position_topic": angle_set,
            "set_position_template": command.replace("VALUE", "position"),
            "position_topic": pin_json, "position_template": state,
            "position_open": 100, "position_closed": 0}


@dataclass(frozen=True)
class Entity:
    """One discovery message: where it goes and what it says."""

    topic: str
    payload: dict[str, Any]

    def encode(self) -> bytes:
        return encode(self.payload)


def _shared(config: Config, topics: Topics, model: str) -> dict[str, Any]:
    """What every entity of the device repeats (device, origin, availability, QoS)."""
    return {
        "device": {"identifiers": [topics.object_id], "name": f"pinpanel {topics.device_id}",
                   "manufacturer": "pinpanel", "model": model, "sw_version": __version__},
        "origin": {"name": "pinpanel", "sw_version": __version__},
        "availability": [{"topic": topics.status, "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        # Per entity: Home Assistant ignores a QoS set only once for a whole device.
        "qos": config.mqtt.qos,
    }


def entities(config: Config, topics: Topics, model: str) -> list[Entity]:
    """Every entity this configuration describes, in pin order (a pin's button after it)."""
    shared = _shared(config, topics, model)
    found: list[Entity] = []
    for pin in config.pins:
        pin_json = topics.attributes(pin.id)
        if pin.mode in ("pwm", "servo"):
            levelled = {"name": pin.name, "unique_id": topics.unique_id(pin.id),
                        **_levelled(pin, topics), "json_attributes_topic": pin_json, **shared}
            found.append(Entity(topics.discovery(platform_of(pin), pin.id), levelled))
            if pin.pulse_ms:
                found.append(_pulse_button(pin, topics, shared))
            continue
        data: dict[str, Any] = {
            "name": pin.name,
            "unique_id": topics.unique_id(pin.id),
            "state_topic": pin_json,
            "value_template": VALUE_TEMPLATE,
            "json_attributes_topic": pin_json,
            "payload_on": ON,
            "payload_off": OFF,
            **shared,
        }
        if pin.is_output:
            data["command_topic"] = topics.command(pin.id)
        found.append(Entity(topics.discovery(platform_of(pin), pin.id), data))
        if pin.is_output and pin.pulse_ms:
            found.append(_pulse_button(pin, topics, shared))
    for scene in config.scenes:
        data = {
            "name": scene.name,
            "unique_id": f"{topics.object_id}_scene_{scene.id}",
            "command_topic": topics.scene_command(scene.id),
            "payload_on": ON,
            **shared,
        }
        found.append(Entity(topics.discovery(SCENE, scene.id), data))
    found += [Entity(topic, data) for topic, data in sensors.entities(config, topics, shared)]
    return found


def _pulse_button(pin: PinConfig, topics: Topics, shared: dict[str, Any]) -> Entity:
    button = {
        "name": f"{pin.name} pulse",
        "unique_id": f"{topics.unique_id(pin.id)}_pulse",
        "command_topic": topics.command(pin.id),
        "payload_press": PULSE,
        **shared,
    }
    return Entity(topics.discovery(BUTTON, pin.id), button)


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Published:
    """What this device last left retained on the broker.

    ``topics``: per-entity discovery messages; ``device_topic``: a device-based message
    (from a pinpanel before per-entity discovery) with its ``components`` (id -> platform);
    ``pins``: pins with a retained state and attributes.
    """

    topics: tuple[str, ...] = ()
    pins: tuple[str, ...] = ()
    device_topic: str | None = None
    components: dict[str, str] = field(default_factory=dict)

    def as_text(self) -> str:
        data: dict[str, Any] = {"topics": list(self.topics), "pins": list(self.pins)}
        if self.device_topic:
            data |= {"topic": self.device_topic, "components": self.components}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_text(cls, text: str | None) -> Published:
        """Parse a stored record; anything unreadable counts as "nothing published".

        ``topic`` and ``components`` are the fields of the device-based record.
        """
        if not text:
            return cls()
        try:
            data = json.loads(text)
            topics = tuple(str(t) for t in data.get("topics", []))
            pins = tuple(str(p) for p in data.get("pins", []))
            device_topic = data.get("topic")
            components = {str(k): str(v) for k, v in dict(data.get("components", {})).items()}
        except (ValueError, TypeError, AttributeError):
            return cls()
        if not isinstance(device_topic, str) or not device_topic:
            device_topic, components = None, {}
        return cls(topics, pins, device_topic, components)


def now_published(config: Config, topics: Topics, model: str) -> Published:
    found = entities(config, topics, model) if config.mqtt.discovery else []
    return Published(topics=tuple(e.topic for e in found),
                     # sensors too: a removed sensor's retained state is cleared like a pin's
                     pins=tuple(p.id for p in config.pins) + tuple(s.id for s in config.sensors))


@dataclass(frozen=True)
class Plan:
    """What to publish on connect to move the broker from ``before`` to ``after``.

    In order: empty retained messages on ``clear_topics``; then on the old device-based
    topic ``MIGRATE`` (when ``migrate``) or an empty message (it removes the old device and
    its entities); the current entities; an empty message on the device topic to end a
    migration; empty retained state and attributes of ``stale_pins``.
    """

    clear_topics: tuple[str, ...]
    device_topic: str | None
    migrate: bool
    stale_pins: tuple[str, ...]


def plan(before: Published, after: Published, *, device_topic: str,
         components: dict[str, str]) -> Plan:
    """The steps from ``before`` to ``after``.

    ``device_topic`` is where this device's device-based message would be now and
    ``components`` maps each configured pin id to its platform. A device-based message is
    migrated only when it is this device's (same ids, so the same unique ids) and every
    component it named is still configured on the same platform: Home Assistant would
    otherwise keep the entities that left as orphans in its registry. Then the old device
    is removed instead, and its entities come back from the new messages, without the
    settings made on them in Home Assistant.
    """
    clear = tuple(t for t in before.topics if t not in after.topics)
    migrate = bool(before.device_topic == device_topic and after.topics and all(
        components.get(cid) == platform for cid, platform in before.components.items()))
    stale = tuple(p for p in before.pins if p not in after.pins)
    return Plan(clear, before.device_topic, migrate, stale)
