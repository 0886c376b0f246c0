"""Sensors on the broker: ``<base>/<sensor>/state`` and a Home Assistant ``sensor`` per reading.

The state is one retained JSON message per published sample, with every reading of the
sensor (``{"temperature": 21.4, "humidity": 48.2, "at": ..., "error": null}``), so a BME280's
three readings arrive together. An error reading carries ``"error": "crc"`` and ``null``
values: Home Assistant shows the entity as unavailable (its ``availability_template``
reads the error), never a number.

Each reading is one ``sensor`` entity with ``device_class``, ``unit_of_measurement`` and
``state_class`` (``measurement``, or ``total_increasing`` for a counter's total), on the same
device as the pins, at ``<prefix>/sensor/pinpanel_<device_id>/<sensor>_<reading>/config``.
"""

from __future__ import annotations

import json
from typing import Any

from pinpanel.config import Config
from pinpanel.mqtt.topics import ONLINE, Topics
from pinpanel.sensors.model import Sample, quantities

SENSOR = "sensor"
STATE = "state"
#: A reading's value, or "None" (Home Assistant's "unknown") when the sample has none.
VALUE_TEMPLATE = "{{{{ value_json.{name} }}}}"
#: Available while the last read worked: an error reading is "unavailable", not a number.
AVAILABILITY_TEMPLATE = "{{ 'online' if value_json.error is none else 'offline' }}"


def state_topic(topics: Topics, sensor_id: str) -> str:
    return f"{topics.base}/{sensor_id}/{STATE}"


def state_payload(sample: Sample, names: list[str]) -> bytes:
    """The retained state: every reading (null after an error), ``at`` and the error."""
    data: dict[str, Any] = dict.fromkeys(names)
    data.update(sample.values)
    data.update(at=sample.at_text, error=sample.error, detail=sample.detail)
    return json.dumps(data, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def entities(config: Config, topics: Topics, shared: dict[str, Any],
             ) -> list[tuple[str, dict[str, Any]]]:
    """(discovery topic, payload) for every reading of every sensor, in config order."""
    found: list[tuple[str, dict[str, Any]]] = []
    for sensor in config.sensors:
        topic = state_topic(topics, sensor.id)
        for q in quantities(sensor):
            component = f"{sensor.id}_{q.name}"
            data: dict[str, Any] = {
                "name": f"{sensor.name} {q.name}",
                "unique_id": topics.unique_id(component),
                "state_topic": topic,
                "value_template": VALUE_TEMPLATE.format(name=q.name),
                "json_attributes_topic": topic,
                "state_class": q.state_class,
                "suggested_display_precision": q.precision,
                **shared,
            }
            if q.unit:
                data["unit_of_measurement"] = q.unit
            if q.device_class:
                data["device_class"] = q.device_class
            # The device's status and the reading's own health: both must be online.
            data["availability"] = [*shared["availability"], {
                "topic": topic, "value_template": AVAILABILITY_TEMPLATE,
                "payload_available": ONLINE, "payload_not_available": "offline"}]
            data["availability_mode"] = "all"
            found.append((topics.discovery(SENSOR, component), data))
    return found
