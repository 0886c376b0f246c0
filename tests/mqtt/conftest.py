"""A real mosquitto per test, an MQTT probe client, and pinpanel configs that use them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from pinpanel.local_broker import LocalBroker

#: Three outputs (two interlocked) and one input, on device "t1".
PINS = """
[[pins]]
pin = 17
id = "relay_a"
name = "Relay A"
initial = "off"

[[pins]]
pin = 27
id = "relay_b"
name = "Relay B"
initial = "off"

[[pins]]
pin = 22
id = "lamp"
name = "Lamp"
initial = "off"
pulse_ms = 1000

[[pins]]
pin = 5
id = "button"
name = "Button"
mode = "input"

[[interlocks]]
pins = ["relay_a", "relay_b"]
"""

BASE = "pinpanel/t1"
#: Every entity of device t1 (and of no other device).
DISCOVERY = "homeassistant/+/pinpanel_t1/+/config"
#: Where pinpanel before per-entity discovery published its one device-based message.
DEVICE_DISCOVERY = "homeassistant/device/pinpanel_t1/config"
#: Each entity the PINS config makes: (platform, pin id).
ENTITIES = (("switch", "relay_a"), ("switch", "relay_b"), ("switch", "lamp"),
            ("button", "lamp"), ("binary_sensor", "button"))
#: Home Assistant's pattern for a discovery topic (after the prefix), and its platforms.
HA_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
                      r"?(?P<object_id>[a-zA-Z0-9_-]+)/config")
HA_ABBREVIATED = {"p", "stat_t", "cmd_t", "uniq_id", "dev", "o", "avty", "json_attr_t",
                  "val_tpl", "pl_on", "pl_off", "pl_prs"}


def entity(platform: str, pin: str, device: str = "t1", prefix: str = "homeassistant") -> str:
    """The discovery topic of one entity."""
    return f"{prefix}/{platform}/pinpanel_{device}/{pin}/config"


def render(template: str, payload: bytes) -> str:
    """Render a ``value_template`` as Home Assistant does, with ``value_json`` (Jinja2)."""
    import jinja2

    return jinja2.Environment(autoescape=True).from_string(template).render(
        value=payload.decode(), value_json=json.loads(payload))


def assert_valid_entity(topic: str, payload: dict[str, Any], *, base: str = BASE,
                        prefix: str = "homeassistant", qos: int = 1) -> None:
    """What Home Assistant requires of a single-component discovery message, and ours."""
    assert topic.startswith(f"{prefix}/")
    match = HA_TOPIC.fullmatch(topic[len(prefix) + 1:])
    assert match, topic
    platform, node, pin = match["component"], match["node_id"], match["object_id"]
    assert platform in {"switch", "binary_sensor", "button"}, topic
    assert node == payload["device"]["identifiers"][0], (node, payload["device"])
    assert not HA_ABBREVIATED & set(payload)  # full names only, readable in a broker tool
    assert "p" not in payload and "cmps" not in payload  # device-based fields
    device = payload["device"]
    assert device["name"] and device["manufacturer"] == "pinpanel" and device["model"]
    assert payload["origin"]["name"] == "pinpanel"
    assert payload["availability"] == [{"topic": f"{base}/status", "payload_available": "online",
                                        "payload_not_available": "offline"}]
    assert payload["qos"] == qos  # in every entity: HA ignores a device-level QoS
    assert payload["name"]
    if platform == "button":
        assert payload["unique_id"] == f"{node}_{pin}_pulse"
        assert payload["command_topic"] == f"{base}/{pin}/set"
        assert payload["payload_press"] == "PULSE"
        assert "state_topic" not in payload
        return
    assert payload["unique_id"] == f"{node}_{pin}"
    # One topic for state and attributes: one Home Assistant state change per pin change.
    assert payload["state_topic"] == payload["json_attributes_topic"] == f"{base}/{pin}/attributes"
    for state, word in ((True, "ON"), (False, "OFF")):
        pin_json = json.dumps({"id": pin, "state": state, "seq": 7}).encode()
        assert render(payload["value_template"], pin_json) == word
    assert (payload["payload_on"], payload["payload_off"]) == ("ON", "OFF")
    if platform == "switch":
        assert payload["command_topic"] == f"{base}/{pin}/set"
    else:
        assert "command_topic" not in payload


def mqtt_config(broker: LocalBroker, pins: str = PINS, device: str = "t1",
                **settings: Any) -> str:
    """A pinpanel config whose [mqtt] section points at ``broker`` (fast reconnects)."""
    values: dict[str, Any] = {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                              "device_id": device, "reconnect_max_s": 1, **settings}
    lines = ["[gpio]", 'backend = "simulated"', "", "[mqtt]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n" + pins


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Start mosquitto processes (127.0.0.1 only); each is stopped by its PID afterwards."""
    brokers: list[LocalBroker] = []

    def make(name: str = "broker", **kwargs: Any) -> LocalBroker:
        broker = LocalBroker(tmp_path / name, **kwargs)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(make_broker: Callable[..., LocalBroker]) -> LocalBroker:
    """One anonymous mosquitto on a free port."""
    return make_broker()


@dataclass(frozen=True, eq=False)
class Received:
    """One message as the probe saw it (compared by identity: two ONs are two messages)."""

    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Probe:
    """An MQTT client that records every message, for tests to wait on (bounded)."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[Received] = []
        self._event = asyncio.Event()

    async def _read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.received.append(Received(message.topic.value, payload, bool(message.retain)))
            self._event.set()

    @property
    def mark(self) -> int:
        """Index of the next message: ``wait_for(..., since=probe.mark)`` sees only newer."""
        return len(self.received)

    async def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def wait_for(self, topic: str, payload: bytes | str | None = None, *,
                       retain: bool | None = None, since: int = 0,
                       where: Callable[[Received], bool] | None = None,
                       timeout: float = 15) -> Received:
        """The first message from ``since`` on that matches; AssertionError after timeout."""
        want = payload.encode() if isinstance(payload, str) else payload
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(self.received):
                message = self.received[index]
                index += 1
                if (message.topic == topic and (want is None or message.payload == want)
                        and (retain is None or message.retain == retain)
                        and (where is None or where(message))):
                    return message
            self._event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [(m.topic, m.payload[:80]) for m in self.received[since:]][-15:]
                raise AssertionError(f"no {topic} {want!r} within {timeout} s; last seen {seen}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)

    def latest(self, topic: str) -> Received | None:
        return next((m for m in reversed(self.received) if m.topic == topic), None)


@contextlib.asynccontextmanager
async def probe(broker: LocalBroker, *filters: str, **client_args: Any,
                ) -> AsyncIterator[Probe]:
    async with aiomqtt.Client("127.0.0.1", broker.port, timeout=10, **client_args) as client:
        watcher = Probe(client)
        reader = asyncio.create_task(watcher._read())
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        try:
            yield watcher
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


def mosquitto_pub(broker: LocalBroker, topic: str, payload: str | bytes,
                  *extra: str) -> None:
    """Publish the way a user at a shell would, with Debian's mosquitto_pub."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
            "-t", topic, *extra]
    data = payload.encode() if isinstance(payload, str) else payload
    source = ["-s"] if data else ["-n"]  # -s: the message is stdin; -n: an empty message
    subprocess.run([*args, *source], input=data, check=True, timeout=10, capture_output=True)


def history_rows(data_dir: Path) -> list[dict[str, Any]]:
    """The audit log straight from the server's database (WAL lets us read beside it)."""
    conn = sqlite3.connect(data_dir / "pinpanel.sqlite3")
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM history ORDER BY seq")]
    finally:
        conn.close()


async def wait_online(broker: LocalBroker, base: str = BASE, timeout: float = 20) -> None:
    """Until the device's bridge has connected and announced itself (retained or live)."""
    async with probe(broker, f"{base}/status") as watch:
        await watch.wait_for(f"{base}/status", "online", timeout=timeout)
