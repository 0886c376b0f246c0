"""The bridge's pure parts: payload parsing, topics, discovery plans, log limiting, queueing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from bench.mqtt_latency import percentile
from tests.mqtt.conftest import assert_valid_entity
from tests.unit.conftest import config_of, running_board, settle

from pinpanel import mqtt
from pinpanel.changes import Actor
from pinpanel.config import PULSE_MAX_MS, MqttConfig
from pinpanel.errors import ConfigError, MqttPayloadError
from pinpanel.fleet import parse_broker
from pinpanel.hardware import BackendInfo
from pinpanel.mqtt import discovery
from pinpanel.mqtt.bridge import MqttBridge, NoiseLimiter
from pinpanel.mqtt.payloads import Command, parse_command
from pinpanel.mqtt.topics import Topics, sanitise_id
from pinpanel.store import Store

pytestmark = pytest.mark.mqtt


@pytest.mark.parametrize(("payload", "expected"), [
    (b"ON", Command("on")), (b"off", Command("off")), (b" Toggle\n", Command("toggle")),
    (b"PULSE", Command(pulse=True)), (b'{"state": "ON"}', Command("on")),
    (b'{"state": "toggle"}', Command("toggle")), (b'{"state": false}', Command("off")),
    (b'{"pulse_ms": 500}', Command(pulse=True, pulse_ms=500)),
    (f'{{"pulse_ms": {PULSE_MAX_MS}}}'.encode(), Command(pulse=True, pulse_ms=PULSE_MAX_MS)),
])
def test_commands_that_parse(payload: bytes, expected: Command) -> None:
    assert parse_command(payload) == expected


@pytest.mark.parametrize("payload", [
    b"", b"FLIP", b"1", b"true", b"\xff\xfe", b"{", b"[]", b"{}", b'"ON"', b"null",
    b'{"state": 1}', b'{"state": "PULSE"}', b'{"state": "ON", "pulse_ms": 5}',
    b'{"pulse_ms": 0}', b'{"pulse_ms": -1}', b'{"pulse_ms": 1.5}', b'{"pulse_ms": true}',
    f'{{"pulse_ms": {PULSE_MAX_MS + 1}}}'.encode(), b'{"brightness": 3}', b"ON" * 200,
])
def test_commands_that_do_not(payload: bytes) -> None:
    with pytest.raises(MqttPayloadError) as caught:
        parse_command(payload)
    assert isinstance(caught.value, ValueError)
    assert len(str(caught.value)) < 200  # a huge payload is not echoed into the log


def test_topics_from_defaults_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "Kitchen-Pi.local")
    topics = Topics.of(MqttConfig())
    assert topics.device_id == "kitchen-pi"
    assert topics.base == "pinpanel/kitchen-pi"
    assert topics.state("lamp") == "pinpanel/kitchen-pi/lamp/state"
    assert topics.discovery("switch", "lamp") == \
        "homeassistant/switch/pinpanel_kitchen-pi/lamp/config"
    assert topics.device_discovery == "homeassistant/device/pinpanel_kitchen-pi/config"
    assert topics.ha_status == "homeassistant/status"
    assert topics.unique_id("lamp") == "pinpanel_kitchen-pi_lamp"
    custom = Topics.of(MqttConfig(device_id="Shed #2", base_topic="/house/shed/",
                                  discovery_prefix="ha"))
    assert custom.device_id == "shed-2"
    assert custom.base == "house/shed"
    assert custom.command_filter == "house/shed/+/set"
    assert custom.pin_of_command("house/shed/lamp/set") == "lamp"
    for other in ("house/shed/lamp/state", "house/shed/a/b/set", "house/shed//set",
                  "house/other/lamp/set", "house/shed/set"):
        assert custom.pin_of_command(other) is None, other


def test_wildcards_in_topics_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        Topics.of(MqttConfig(base_topic="house/+/x", discovery_prefix="ha/#"))
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(("raw", "clean"), [
    ("raspberrypi", "raspberrypi"), ("My Pi", "my-pi"), ("a/b+c#", "a-b-c"), ("", "pinpanel"),
    ("---", "pinpanel"), ("x" * 100, "x" * 64),
])
def test_sanitise_id(raw: str, clean: str) -> None:
    assert sanitise_id(raw) == clean


def test_discovery_plan_for_per_entity_messages() -> None:
    before = discovery.Published(("ha/switch/n/a/config", "ha/switch/n/b/config",
                                  "ha/binary_sensor/n/c/config"), ("a", "b", "c"))
    after = discovery.Published(("ha/switch/n/a/config", "ha/switch/n/c/config"), ("a", "c"))
    plan = discovery.plan(before, after, device_topic="ha/device/n/config",
                          components={"a": "switch", "c": "switch"})
    assert plan.clear_topics == ("ha/switch/n/b/config", "ha/binary_sensor/n/c/config")
    assert plan.stale_pins == ("b",)
    assert (plan.device_topic, plan.migrate) == (None, False)
    off = discovery.plan(before, discovery.Published((), ("a", "b", "c")),
                         device_topic="ha/device/n/config", components={})
    assert off.clear_topics == before.topics
    assert off.stale_pins == ()
    fresh = discovery.plan(discovery.Published(), after, device_topic="ha/device/n/config",
                           components={})
    assert fresh.clear_topics == ()
    assert fresh.device_topic is None


def test_discovery_plan_from_a_device_based_record() -> None:
    legacy = discovery.Published(pins=("a", "c"), device_topic="ha/device/n/config",
                                 components={"a": "switch", "c": "binary_sensor"})
    after = discovery.Published(("ha/switch/n/a/config", "ha/binary_sensor/n/c/config"),
                                ("a", "c"))
    now = {"a": "switch", "c": "binary_sensor"}
    same = discovery.plan(legacy, after, device_topic="ha/device/n/config", components=now)
    assert (same.device_topic, same.migrate) == ("ha/device/n/config", True)
    # A component gone, or on another platform, or another device: remove, do not migrate.
    for components, device in (({"a": "switch"}, "ha/device/n/config"),
                               ({"a": "switch", "c": "switch"}, "ha/device/n/config"),
                               (now, "ha/device/other/config")):
        other = discovery.plan(legacy, after, device_topic=device, components=components)
        assert (other.device_topic, other.migrate) == ("ha/device/n/config", False)
    off = discovery.plan(legacy, discovery.Published((), ("a", "c")),
                         device_topic="ha/device/n/config", components=now)
    assert (off.device_topic, off.migrate) == ("ha/device/n/config", False)


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"components": 3}',
                                  '{"topic": 5, "pins": "ab"}', '{"topics": 7}'])
def test_a_damaged_record_counts_as_nothing_published(text: str | None) -> None:
    record = discovery.Published.from_text(text)
    assert record.topics == ()
    assert record.device_topic is None
    assert record.components == {}


def test_record_round_trip_and_the_device_based_record() -> None:
    record = discovery.Published(("ha/switch/n/a/config",), ("a",))
    assert discovery.Published.from_text(record.as_text()) == record
    # As pinpanel wrote it before per-entity discovery.
    old = '{"components": {"a": "switch"}, "pins": ["a"], "topic": "ha/device/n/config"}'
    legacy = discovery.Published.from_text(old)
    assert legacy == discovery.Published((), ("a",), "ha/device/n/config", {"a": "switch"})
    assert discovery.Published.from_text(legacy.as_text()) == legacy
    off = '{"components": {}, "pins": ["a"], "topic": null}'
    assert discovery.Published.from_text(off) == discovery.Published((), ("a",))


async def test_the_record_lives_in_the_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        assert store.read_meta(discovery.RECORD_KEY) is None
        await store.write_meta(discovery.RECORD_KEY, "one")
        await store.write_meta(discovery.RECORD_KEY, "two")
        assert store.read_meta(discovery.RECORD_KEY) == "two"
    finally:
        store.close()


def test_entities_per_pin_and_the_pulse_button() -> None:
    config = config_of('[mqtt]\nqos = 2\n[[pins]]\npin = 17\nid = "a"\npulse_ms = 700\n'
                       '[[pins]]\npin = 27\nid = "b"\n[[pins]]\npin = 5\nid = "c"\n'
                       'mode = "input"\n')
    topics = Topics.of(MqttConfig(device_id="d"))
    found = {e.topic: e.payload for e in discovery.entities(config, topics, "m")}
    assert list(found) == ["homeassistant/switch/pinpanel_d/a/config",
                           "homeassistant/button/pinpanel_d/a/config",
                           "homeassistant/switch/pinpanel_d/b/config",
                           "homeassistant/binary_sensor/pinpanel_d/c/config"]
    for topic, payload in found.items():
        assert_valid_entity(topic, payload, base="pinpanel/d", qos=2)
    assert found["homeassistant/switch/pinpanel_d/a/config"]["device"]["model"] == "m"


def test_noise_limiter_caps_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = NoiseLimiter(logging.getLogger("t"), burst=3, window=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        logged = [limiter("bad %d", i) for i in range(10)]
        assert logged == [True] * 3 + [False] * 7
        now[0] = 61
        assert limiter("bad again")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["bad 0", "bad 1", "bad 2", "7 more ignored MQTT messages were not logged",
                        "bad again"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_adapter_only_when_enabled() -> None:
    unused = BackendInfo("simulated", True, None)
    assert mqtt.adapter(config_of(), object(), listen=print, memory=object(),  # type: ignore[arg-type]
                        hardware=unused) is None


async def test_the_queue_holds_the_latest_state_per_pin(tmp_path: Path) -> None:
    """With no broker the bridge keeps one slot per pin: bounded, newest wins."""
    text = '[mqtt]\nenabled = true\ndevice_id = "q"\n[[pins]]\npin = 17\nid = "a"\n' \
           '[[pins]]\npin = 27\nid = "b"\n'
    async with running_board(tmp_path, text) as board:
        bridge = MqttBridge(board.config, board, listen=board.hub.add_listener,
                            memory=board.store, model="simulated board")
        actor = Actor("t", "test")
        for _ in range(501):
            await board.command("a", "toggle", actor)
        await board.command("b", "on", actor)
        await settle()
        assert list(bridge._dirty) == [17, 27]
        assert bridge._latest[17].state is True
        assert bridge._latest[17].seq == board.view("a").seq
        assert bridge._latest[27].seq == board.view("b").seq > bridge._latest[17].seq


def test_broker_addresses() -> None:
    assert parse_broker("10.0.0.2:1884") == ("10.0.0.2", 1884)
    assert parse_broker("broker.lan") == ("broker.lan", 1883)
    assert parse_broker("[::1]:1883") == ("::1", 1883)
    for bad in ("host:", ":1883", "host:x", "host:70000"):
        with pytest.raises(ValueError):
            parse_broker(bad)


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 0.5) == 50
    assert percentile(samples, 0.99) == 99
    assert percentile([7.0], 0.99) == 7


def test_the_mqtt_package_holds_no_sql_and_no_side_doors() -> None:
    """#13.4/#13.5: SQL lives in the store; what the bridge needs is passed in by the runtime."""
    import ast

    package = Path(mqtt.__file__).parent
    for source in sorted(package.glob("*.py")):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                reach = f"{node.value.attr}.{node.attr}"
                assert not reach.startswith(("board.store", "board.hub", "board.hardware")), \
                    f"{source.name}:{node.lineno} reaches through {reach}"
            if isinstance(node, ast.Attribute) and node.attr in {"store", "hub"}:
                assert not (isinstance(node.value, ast.Name) and node.value.id == "board"), \
                    f"{source.name}:{node.lineno} uses board.{node.attr}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "sqlite3" not in names, f"{source.name} imports sqlite3"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.lstrip().upper().startswith(
                    ("SELECT ", "INSERT ", "UPDATE ", "DELETE ")), f"SQL in {source.name}"


async def test_the_write_interest_guard_is_what_paho_calls() -> None:
    """The guard overrides an aiomqtt internal: an aiomqtt that renamed it would drop it."""
    from pinpanel.mqtt.bridge import _Client

    client = _Client("127.0.0.1", 1)
    paho_callback = client._client.on_socket_register_write
    assert getattr(paho_callback, "__func__", None) is _Client._on_socket_register_write
    assert not client._disconnected.done()  # the future the guard reports a failure on
