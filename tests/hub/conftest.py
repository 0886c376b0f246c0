"""The hub's tests: real mosquitto, real pinpanel processes as Pis, a real hub process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from tests.mqtt.conftest import make_broker, mosquitto  # noqa: F401 (fixtures)
from tests.support import ServerProcess

GARDEN = """
[[pins]]
pin = 17
id = "relay_a"
name = "Relay A"
initial = "off"

[[pins]]
pin = 22
id = "lamp"
name = "Lamp"
initial = "off"

[[pins]]
pin = 5
id = "button"
name = "Button"
mode = "input"

[[groups]]
id = "garden"
name = "Garden"
pins = ["relay_a", "lamp"]
"""


class Broker(Protocol):
    """A broker on 127.0.0.1 (mosquitto, or a RabbitMQ node's MQTT listener)."""

    port: int


def pi_config(broker: Broker, device: str, pins: str = GARDEN, **mqtt: Any) -> str:
    values = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "device_id": device,
              "reconnect_max_s": 1, "discovery": False, **mqtt}
    lines = ["[gpio]", 'backend = "simulated"', "", "[mdns]", "enabled = false", "", "[mqtt]"]
    lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n" + pins


def hub_config(broker: Broker, mqtt: dict[str, Any] | None = None, **hub: Any) -> str:
    # mDNS off: the hub lists only the Pis of its test, not every pinpanel on this network.
    lines = ["[gpio]", 'backend = "simulated"', "", "[mdns]", "enabled = false", "",
             "[mqtt]", 'host = "127.0.0.1"',
             f"port = {broker.port}", "reconnect_max_s = 1"]
    lines += [f"{k} = {_toml(v)}" for k, v in (mqtt or {}).items()]
    lines += ["", "[hub]", "enabled = true"]
    lines += [f"{k} = {_toml(v)}" for k, v in hub.items()]
    return "\n".join(lines) + "\n" + """
[[pins]]
pin = 4
id = "hub_led"
initial = "off"
"""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def wait_devices(hub: ServerProcess, check: Callable[[dict[str, dict[str, Any]]], bool],
                 timeout: float = 30) -> dict[str, dict[str, Any]]:
    """Poll the hub's device list until ``check`` holds (AssertionError after timeout)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, Any]] = {}
    with hub.client() as http:
        while time.monotonic() < deadline:
            try:
                body = http.get("/api/v1/hub/devices").json()
            except httpx.HTTPError:
                body = {"devices": []}
            seen = {d["device_id"]: d for d in body["devices"]}
            if check(seen):
                return seen
            time.sleep(0.1)
    raise AssertionError(f"hub never showed the expected devices; last: "
                         f"{ {k: (v['status'], len(v['pins'])) for k, v in seen.items()} }")
