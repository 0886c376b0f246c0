"""The bridge's pure parts: payload parsing, topics, discovery plans, log limiting, queueing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.unit.conftest import config_of, running_board, settle

from pinpanel import mqtt
from pinpanel.board import Actor
from pinpanel.config import PULSE_MAX_MS, MqttConfig
from pinpanel.errors import ConfigError, MqttPayloadError
from pinpanel.fleet import parse_broker, percentile
from pinpanel.mqtt import discovery
from pinpanel.mqtt.bridge import MqttBridge, NoiseLimiter
from pinpanel.mqtt.payloads import Command, parse_command
from pinpanel.mqtt.topics import Topics, sanitise_id

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
    assert topics.discovery == "homeassistant/device/pinpanel_kitchen-pi/config"
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


def test_discovery_plan() -> None:
    before = discovery.Published("ha/device/p/config", {"a": "switch", "b": "switch",
                                                        "c": "binary_sensor"}, ("a", "b", "c"))
    after = discovery.Published("ha/device/p/config", {"a": "switch", "c": "switch"},
                                ("a", "c"))
    plan = discovery.plan(before, after)
    assert plan.removed_components == {"b": "switch", "c": "binary_sensor"}
    assert plan.clear_topics == ()
    assert plan.stale_pins == ("b",)
    moved = discovery.plan(before, discovery.Published("ha/device/q/config", {}, ("a",)))
    assert moved.clear_topics == ("ha/device/p/config",)
    assert moved.removed_components == {}
    off = discovery.plan(before, discovery.Published(None, {}, ("a", "b", "c")))
    assert off.clear_topics == ("ha/device/p/config",)
    assert discovery.plan(discovery.Published(), after).removed_components == {}


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"components": 3}',
                                  '{"topic": 5, "pins": "ab"}'])
def test_a_damaged_record_counts_as_nothing_published(text: str | None) -> None:
    record = discovery.Published.from_text(text)
    assert record.components == {} or record.topic is None


def test_record_round_trip() -> None:
    record = discovery.Published("t", {"a": "switch"}, ("a",))
    assert discovery.Published.from_text(record.as_text()) == record


def test_removal_payload_reduces_a_component_to_its_platform() -> None:
    config = config_of('[[pins]]\npin = 17\nid = "a"\n')
    topics = Topics.of(MqttConfig(device_id="d"))
    payload = discovery.device_payload(config, topics, "m", removed={"b": "switch",
                                                                     "a": "binary_sensor"})
    assert payload["cmps"]["b"] == {"p": "switch"}
    assert payload["cmps"]["a"] == {"p": "binary_sensor"}
    final = discovery.device_payload(config, topics, "m")
    assert set(final["cmps"]) == {"a"}
    assert final["cmps"]["a"]["command_topic"] == "pinpanel/d/a/set"


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
    assert mqtt.adapter(config_of(), object()) is None  # type: ignore[arg-type]


async def test_the_queue_holds_the_latest_state_per_pin(tmp_path: Path) -> None:
    """With no broker the bridge keeps one slot per pin: bounded, newest wins."""
    text = '[mqtt]\nenabled = true\ndevice_id = "q"\n[[pins]]\npin = 17\nid = "a"\n' \
           '[[pins]]\npin = 27\nid = "b"\n'
    async with running_board(tmp_path, text) as board:
        bridge = MqttBridge(board.config, board)
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
