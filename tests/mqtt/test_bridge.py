"""The bridge end to end: a real pinpanel process, a real mosquitto, real MQTT clients."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from tests.mqtt.conftest import (
    BASE,
    DEVICE_DISCOVERY,
    DISCOVERY,
    ENTITIES,
    PINS,
    Received,
    assert_valid_entity,
    entity,
    history_rows,
    mosquitto_pub,
    mqtt_config,
    probe,
    render,
    wait_online,
)
from tests.support import ServerProcess

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt

OUTPUTS = ("relay_a", "relay_b", "lamp")


def start(make_server: Any, broker: LocalBroker, pins: str = PINS, **settings: Any,
          ) -> ServerProcess:
    server: ServerProcess = make_server(mqtt_config(broker, pins, **settings))
    return server


async def started(make_server: Any, broker: LocalBroker, **settings: Any) -> ServerProcess:
    """A server whose bridge has connected: what follows sees retained messages only."""
    server = start(make_server, broker, **settings)
    await wait_online(broker)
    return server


def pin_json(server: ServerProcess, pin: str) -> dict[str, Any]:
    with server.client() as http:
        response = http.get(f"/api/v1/pins/{pin}")
        assert response.status_code == 200, response.text
        return dict(response.json())


async def retained_entities(broker: LocalBroker, topic_filter: str = DISCOVERY,
                            ) -> dict[str, Received]:
    """Every retained discovery message under ``topic_filter`` (what Home Assistant finds).

    A probe message published after subscribing marks the end of the retained ones: the
    broker sends retained messages first, in order, on the same connection.
    """
    async with probe(broker, topic_filter, "pinpanel/test/end") as fresh:
        await fresh.publish("pinpanel/test/end", b"end")
        end = await fresh.wait_for("pinpanel/test/end", b"end")
        found = {m.topic: m for m in fresh.received[:fresh.received.index(end)]
                 if m.topic != "pinpanel/test/end"}
    assert all(m.retain for m in found.values())
    return found


async def test_discovery_payloads_are_valid_and_everything_is_retained(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    configs = await retained_entities(mosquitto)
    assert set(configs) == {entity(platform, pin) for platform, pin in ENTITIES}
    for topic, message in configs.items():
        assert_valid_entity(topic, message.json())
    async with probe(mosquitto, f"{BASE}/#") as watch:
        await watch.wait_for(f"{BASE}/status", "online", retain=True)
        for pin in (*OUTPUTS, "button"):
            state = await watch.wait_for(f"{BASE}/{pin}/state", retain=True)
            assert state.text == ("ON" if pin_json(server, pin)["state"] else "OFF")
            attributes = await watch.wait_for(f"{BASE}/{pin}/attributes", retain=True)
            assert attributes.json() == pin_json(server, pin)
            # What Home Assistant makes of it: the entity's state from the same message.
            for platform in ("switch", "binary_sensor"):
                if (found := configs.get(entity(platform, pin))) is not None:
                    assert render(found.json()["value_template"], attributes.payload) == \
                        state.text

    payloads = {topic: m.json() for topic, m in configs.items()}
    lamp = payloads[entity("switch", "lamp")]
    assert lamp["name"] == "Lamp"
    assert lamp["device"]["identifiers"] == ["pinpanel_t1"]
    assert payloads[entity("button", "lamp")]["name"] == "Lamp pulse"  # pulse_ms is set
    assert entity("button", "relay_a") not in payloads  # no pulse_ms: no button
    assert payloads[entity("binary_sensor", "button")]["name"] == "Button"
    # Unique ids are unique per platform (Home Assistant's registry is keyed by domain).
    for platform in ("switch", "binary_sensor", "button"):
        ids = [p["unique_id"] for t, p in payloads.items() if f"/{platform}/" in t]
        assert len(set(ids)) == len(ids)
    # One device for all of them.
    assert len({json.dumps(p["device"], sort_keys=True) for p in payloads.values()}) == 1

    # Unique ids are stable across a restart (same config, same data).
    assert server.stop() == 0
    server.start()
    await wait_online(mosquitto)
    again = await retained_entities(mosquitto)
    assert {t: m.json()["unique_id"] for t, m in again.items()} == \
        {t: p["unique_id"] for t, p in payloads.items()}


async def test_home_assistant_sees_one_message_per_change(make_server: Any,
                                                          mosquitto: LocalBroker) -> None:
    """Home Assistant subscribes to the topics a discovery message names: one per change."""
    server = await started(make_server, mosquitto)
    lamp = (await retained_entities(mosquitto, entity("switch", "lamp")))[
        entity("switch", "lamp")].json()
    ha_topics = {lamp["state_topic"], lamp["json_attributes_topic"]}
    assert len(ha_topics) == 1
    async with probe(mosquitto, f"{BASE}/lamp/#") as watch:
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", retain=True)
        mark = watch.mark
        # One at a time: the bridge keeps only the newest state of a pin it has not sent yet.
        mosquitto_pub(mosquitto, lamp["command_topic"], "ON")
        # A change is out once its plain state has come through: the last message it sends.
        on = await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
        mosquitto_pub(mosquitto, lamp["command_topic"], "OFF")
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", since=watch.received.index(on))
        seen = [m for m in watch.received[mark:] if m.topic in ha_topics]
    assert [m.json()["state"] for m in seen] == [True, False]
    assert [m.json()["seq"] for m in seen] == \
        [r["seq"] for r in history_rows(server.data_dir) if r["pin_id"] == "lamp"][-2:]


async def test_a_pulse_button_press_pulses_the_pin(make_server: Any,
                                                   mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    button = (await retained_entities(mosquitto, entity("button", "lamp")))[
        entity("button", "lamp")].json()
    async with probe(mosquitto, f"{BASE}/lamp/attributes") as watch:
        before = (await watch.wait_for(f"{BASE}/lamp/attributes", retain=True)).json()
        mark = watch.mark
        # As Home Assistant presses it: payload_press on command_topic, not retained.
        await watch.client.publish(button["command_topic"], button["payload_press"],
                                   qos=button["qos"], retain=False)
        # On, then off by the pulse timer: two changes after the one before the press (the
        # bridge sends only the newest state of a pin it could not send yet, so under load
        # the "on" may be folded into the "off"; the audit log below has both).
        await watch.wait_for(f"{BASE}/lamp/attributes", since=mark, where=lambda m: (
            m.json()["state"] is False and m.json()["seq"] >= before["seq"] + 2))
    rows = [r for r in history_rows(server.data_dir) if r["pin_id"] == "lamp"]
    assert [(r["new"], r["cause"]) for r in rows[-2:]] == [(1, "mqtt"), (0, "pulse")]


async def test_mosquitto_pub_commands_switch_pins_with_the_same_seq_everywhere(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    async with probe(mosquitto, f"{BASE}/#") as watch:
        await watch.wait_for(f"{BASE}/status", "online")
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", retain=True)

        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/lamp/set", "ON")
        attributes = await watch.wait_for(f"{BASE}/lamp/attributes", since=mark,
                                          where=lambda m: m.json()["state"] is True)
        state = await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
        assert not state.retain  # delivered live to a subscriber; the broker also keeps it
        seq = attributes.json()["seq"]
        # Attributes come before the state, so the state message's seq is already known.
        assert watch.received.index(attributes) < watch.received.index(state)
        http = pin_json(server, "lamp")
        assert http["state"] is True
        assert http["seq"] == seq
        rows = [r for r in history_rows(server.data_dir) if r["seq"] == seq]
        assert rows and rows[0]["actor"] == "mqtt" and rows[0]["pin_id"] == "lamp"
        assert rows[0]["new"] == 1

        # JSON, lower case and TOGGLE work too; each lands as the next committed change.
        for payload, expected in (('{"state": "OFF"}', "OFF"), ("toggle", "ON"),
                                  ("  OFF \n", "OFF"), ('{"state": true}', "ON"),
                                  ("TOGGLE", "OFF")):
            mark = watch.mark
            mosquitto_pub(mosquitto, f"{BASE}/lamp/set", payload)
            await watch.wait_for(f"{BASE}/lamp/state", expected, since=mark)
        assert pin_json(server, "lamp")["state"] is False

        # PULSE and {"pulse_ms": N}: on, then off again by the board's timer.
        # (A short pulse's "on" may be folded into its "off" when the bridge is behind: it
        # sends the newest state of a pin; so wait for the off with the seq after the on.)
        for payload in ('{"pulse_ms": 50}', "PULSE"):
            mark = watch.mark
            seq = pin_json(server, "lamp")["seq"]
            mosquitto_pub(mosquitto, f"{BASE}/lamp/set", payload)
            await watch.wait_for(f"{BASE}/lamp/attributes", since=mark, where=lambda m, seq=seq: (
                m.json()["state"] is False and m.json()["seq"] >= seq + 2))
            rows = [r for r in history_rows(server.data_dir) if r["pin_id"] == "lamp"]
            assert [(r["new"], r["cause"]) for r in rows[-2:]] == [(1, "mqtt"), (0, "pulse")]

    # An HTTP change is published too, with the seq the HTTP answer carried.
    async with probe(mosquitto, f"{BASE}/lamp/#") as watch:
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", retain=True)
        mark = watch.mark
        with server.client() as client:
            answer = client.post("/api/v1/pins/lamp/on").json()
        attributes = await watch.wait_for(f"{BASE}/lamp/attributes", since=mark,
                                          where=lambda m: m.json()["seq"] == answer["seq"])
        assert attributes.json()["state"] is True
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)


async def test_event_stream_carries_the_mqtt_change_with_its_seq(
        make_server: Any, mosquitto: LocalBroker) -> None:
    import httpx

    server = await started(make_server, mosquitto)
    async with probe(mosquitto, f"{BASE}/lamp/#") as watch, \
            httpx.AsyncClient(base_url=server.url, timeout=15,
                              headers={"Authorization": f"Bearer {server.token}"}) as http:
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", retain=True)
        async with http.stream("GET", "/api/v1/events",
                               headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            mark = watch.mark
            mosquitto_pub(mosquitto, f"{BASE}/lamp/set", "ON")
            attributes = await watch.wait_for(f"{BASE}/lamp/attributes", since=mark,
                                              where=lambda m: m.json()["state"] is True)
            seq = attributes.json()["seq"]
            event = await _event_with_seq(stream, seq)
    assert event["pin"]["id"] == "lamp"
    assert event["pin"]["state"] is True
    assert event["actor"] == "mqtt"


async def _event_with_seq(stream: Any, seq: int) -> dict[str, Any]:
    """Read SSE frames until the change with ``seq`` (bounded by the client's timeout)."""
    lines: list[str] = []
    async for line in stream.aiter_lines():
        if line:
            lines.append(line)
            continue
        data = "\n".join(x[5:].lstrip() for x in lines if x.startswith("data:"))
        ids = [x[3:].strip() for x in lines if x.startswith("id:")]
        lines = []
        if not data:
            continue
        body = json.loads(data)
        if (ids and ids[0] == str(seq)) or (isinstance(body, dict) and body.get("seq") == seq):
            return dict(body)
    raise AssertionError(f"the event stream ended before seq {seq}")


async def test_malformed_payloads_unknown_pins_and_inputs_are_ignored(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    async with probe(mosquitto, f"{BASE}/#") as watch:
        await watch.wait_for(f"{BASE}/status", "online")
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", retain=True)
        with server.client() as http:
            seq_before = http.get("/api/v1/system").json()["seq"]
        mark = watch.mark
        junk: list[tuple[str, bytes]] = [
            (f"{BASE}/nosuchpin/set", b"ON"),
            (f"{BASE}/button/set", b"ON"),
            (f"{BASE}/lamp/set", b"FLIP"),
            (f"{BASE}/lamp/set", b"\xff\xfe\x00"),
            (f"{BASE}/lamp/set", b"{"),
            (f"{BASE}/lamp/set", b"[]"),
            (f"{BASE}/lamp/set", b'{"state": 1}'),
            (f"{BASE}/lamp/set", b'{"state": "ON", "pulse_ms": 5}'),
            (f"{BASE}/lamp/set", b'{"pulse_ms": 0}'),
            (f"{BASE}/lamp/set", b'{"pulse_ms": "500"}'),
            (f"{BASE}/lamp/set", b'{"pulse_ms": 99999999999}'),
            (f"{BASE}/lamp/set", b"ON" * 300),
            (f"{BASE}/lamp/set", b""),
            (f"{BASE}/99/set", b"ON"),
            (f"{BASE}/lamp/state", b"ON"),  # not a command topic: the bridge does not listen
        ]
        for topic, payload in junk:
            await watch.publish(topic, payload)
        # The bridge is alive and applies the next good command; nothing else changed.
        await watch.publish(f"{BASE}/relay_b/set", b"ON")
        await watch.wait_for(f"{BASE}/relay_b/state", "ON", since=mark)
    with server.client() as http:
        assert http.get("/api/v1/system").json()["seq"] == seq_before + 1
        pins = {p["id"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
    assert pins == {"relay_a": False, "relay_b": True, "lamp": False, "button": pins["button"]}
    log = server.log()
    assert "Traceback" not in log
    assert "ignored a command on pinpanel/t1/nosuchpin/set: no configured pin 'nosuchpin'" in log
    assert "ignored a command on pinpanel/t1/button/set: GPIO5 (button) is an input" in log
    assert "ignored a command on pinpanel/t1/lamp/set: unknown command b'FLIP'" in log
    # Thirteen bad commands, but the log is rate-limited: a client cannot flood the SD card.
    assert log.count("ignored a command") == 10
    assert server.proc is not None and server.proc.poll() is None


async def test_a_retained_command_is_not_replayed_on_connect(make_server: Any,
                                                             mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    assert server.stop() == 0
    # Someone published a command with the retain flag: every (re)subscribe delivers it again.
    mosquitto_pub(mosquitto, f"{BASE}/lamp/set", "ON", "-r")
    server.start()
    async with probe(mosquitto, f"{BASE}/#") as watch:
        await watch.wait_for(f"{BASE}/status", "online")
        await watch.wait_for(f"{BASE}/lamp/state", "OFF")
        mark = watch.mark
        await watch.publish(f"{BASE}/relay_b/set", "ON")  # commands still work
        await watch.wait_for(f"{BASE}/relay_b/state", "ON", since=mark)
    assert pin_json(server, "lamp")["state"] is False
    assert "ignored a retained command on pinpanel/t1/lamp/set" in server.log()
    mosquitto_pub(mosquitto, f"{BASE}/lamp/set", "", "-r")


async def test_interlocks_hold_for_mqtt_commands(make_server: Any, mosquitto: LocalBroker,
                                                 ) -> None:
    server = await started(make_server, mosquitto)
    async with probe(mosquitto, f"{BASE}/#") as watch:
        await watch.wait_for(f"{BASE}/relay_b/state", "OFF", retain=True)
        mark = watch.mark
        await watch.publish(f"{BASE}/relay_a/set", "ON")
        await watch.wait_for(f"{BASE}/relay_a/state", "ON", since=mark)
        for _ in range(5):  # back and forth, as fast as the client can publish
            await watch.publish(f"{BASE}/relay_b/set", "ON")
            await watch.publish(f"{BASE}/relay_a/set", "ON")
        await watch.publish(f"{BASE}/relay_b/set", "ON")
        # Commands apply in arrival order, so once the lamp's comes back all before it have.
        await watch.publish(f"{BASE}/lamp/set", "ON")
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
        assert watch.latest(f"{BASE}/relay_a/state").payload == b"OFF"  # type: ignore[union-attr]
        assert watch.latest(f"{BASE}/relay_b/state").payload == b"ON"  # type: ignore[union-attr]
    with server.client() as http:
        pins = {p["id"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
    assert (pins["relay_a"], pins["relay_b"]) == (False, True)
    # Replay the audit log: never both on after any committed change.
    state = {"relay_a": False, "relay_b": False}
    rows = history_rows(server.data_dir)
    for row in rows:
        if row["pin_id"] in state:
            state[row["pin_id"]] = bool(row["new"])
            assert not all(state.values()), row
    assert any(r["cause"] == "interlock" and r["actor"] == "mqtt" for r in rows)


async def test_home_assistant_online_triggers_republish(make_server: Any,
                                                        mosquitto: LocalBroker) -> None:
    await started(make_server, mosquitto)
    first = await retained_entities(mosquitto)
    async with probe(mosquitto, DISCOVERY, f"{BASE}/status") as watch:
        await watch.wait_for(f"{BASE}/status", "online", retain=True)
        mark = watch.mark
        await watch.publish("homeassistant/status", "offline")  # HA going away: nothing
        await watch.publish("homeassistant/status", "online")   # HA's birth message
        for topic, message in first.items():
            again = await watch.wait_for(topic, retain=False, since=mark)
            assert again.json() == message.json()
        await watch.wait_for(f"{BASE}/status", "online", retain=False, since=mark)


async def test_custom_prefix_and_base_topic(make_server: Any, mosquitto: LocalBroker) -> None:
    start(make_server, mosquitto, base_topic="house/shed", discovery_prefix="ha", qos=0)
    await wait_online(mosquitto, "house/shed")
    configs = await retained_entities(mosquitto, "ha/#")
    assert set(configs) == {entity(platform, pin, prefix="ha") for platform, pin in ENTITIES}
    for topic, message in configs.items():
        assert_valid_entity(topic, message.json(), base="house/shed", prefix="ha", qos=0)
    async with probe(mosquitto, "house/shed/#", "ha/#") as watch:
        await watch.wait_for("house/shed/lamp/state", "OFF", retain=True)
        mark = watch.mark
        await watch.publish("ha/status", "online")
        await watch.wait_for(entity("switch", "lamp", prefix="ha"), since=mark)
        await watch.publish("house/shed/lamp/set", "ON")
        await watch.wait_for("house/shed/lamp/state", "ON", since=mark)


async def test_a_pin_that_leaves_the_config_leaves_home_assistant(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    assert entity("switch", "lamp") in await retained_entities(mosquitto)
    async with probe(mosquitto, DISCOVERY, f"{BASE}/+/state") as watch:
        await watch.wait_for(f"{BASE}/lamp/state", retain=True)
        assert server.stop() == 0

        # Same device, same data: lamp is gone, the button became an output.
        fewer = PINS.replace('id = "lamp"', 'id = "lamp2"').replace(
            'mode = "input"', 'initial = "off"')
        server.config_text = mqtt_config(mosquitto, fewer)
        mark = watch.mark
        server.start()
        # An empty retained message removes an entity (and its registry entry) in HA.
        for gone in (entity("switch", "lamp"), entity("button", "lamp"),
                     entity("binary_sensor", "button")):
            await watch.wait_for(gone, b"", since=mark)
        # Retained empty payload clears the old pin's state from the broker.
        await watch.wait_for(f"{BASE}/lamp/state", b"", since=mark)
    assert "mqtt: removed 3 entities from Home Assistant discovery" in server.log()
    # What a new subscriber (Home Assistant after a restart) gets: only the current entities.
    after = await retained_entities(mosquitto)
    assert set(after) == {entity("switch", p) for p in ("relay_a", "relay_b", "lamp2", "button")
                          } | {entity("button", "lamp2")}
    for topic, message in after.items():
        assert_valid_entity(topic, message.json())
    async with probe(mosquitto, f"{BASE}/lamp/state") as fresh:
        await fresh.publish(f"{BASE}/lamp/state", b"probe")  # marks the end of retained ones
        await fresh.wait_for(f"{BASE}/lamp/state", b"probe")
        assert [m.payload for m in fresh.received if m.topic == f"{BASE}/lamp/state"] == \
            [b"probe"]


async def test_turning_discovery_off_removes_the_device(make_server: Any,
                                                        mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    assert len(await retained_entities(mosquitto)) == len(ENTITIES)
    assert server.stop() == 0
    server.config_text = mqtt_config(mosquitto, discovery=False)
    server.start()
    await wait_online(mosquitto)
    assert await retained_entities(mosquitto) == {}


LEGACY_COMPONENTS = {"relay_a": "switch", "relay_b": "switch", "lamp": "switch",
                     "button": "binary_sensor"}


def seed_device_based_discovery(server: ServerProcess, broker: LocalBroker,
                                components: dict[str, str]) -> None:
    """What a pinpanel that published device-based discovery left behind.

    Its database record of what it published, and its retained device-based message.
    """
    record = json.dumps({"topic": DEVICE_DISCOVERY, "components": components,
                         "pins": list(components)}, sort_keys=True)
    conn = sqlite3.connect(server.data_dir / "pinpanel.sqlite3")
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     ("mqtt.published", record))
    conn.close()
    payload = {"dev": {"ids": ["pinpanel_t1"], "name": "pinpanel t1"}, "o": {"name": "pinpanel"},
               "cmps": {pin: {"p": platform, "unique_id": f"pinpanel_t1_{pin}"}
                        for pin, platform in components.items()}}
    mosquitto_pub(broker, DEVICE_DISCOVERY, json.dumps(payload), "-r")
    for platform, pin in ENTITIES:  # it had published no per-entity messages
        mosquitto_pub(broker, entity(platform, pin), "", "-r")


async def test_device_based_discovery_is_handed_over_to_per_entity(
        make_server: Any, mosquitto: LocalBroker) -> None:
    """Home Assistant's migration: the entities keep their registry entries and settings."""
    server = await started(make_server, mosquitto)
    assert server.stop() == 0
    seed_device_based_discovery(server, mosquitto, LEGACY_COMPONENTS)
    async with probe(mosquitto, DEVICE_DISCOVERY, DISCOVERY, f"{BASE}/status") as watch:
        await watch.wait_for(DEVICE_DISCOVERY, retain=True)
        mark = watch.mark
        server.start()
        migrate = await watch.wait_for(DEVICE_DISCOVERY, since=mark, retain=False)
        assert migrate.json() == {"migrate_discovery": True}
        emptied = await watch.wait_for(DEVICE_DISCOVERY, b"", since=mark, retain=False)
        order = watch.received.index
        for platform, pin in ENTITIES:
            config = await watch.wait_for(entity(platform, pin), since=mark, retain=False)
            assert order(migrate) < order(config) < order(emptied)
        await watch.wait_for(f"{BASE}/status", "online", since=mark)  # logged before it
    assert "mqtt: migrated from Home Assistant's device-based discovery" in server.log()
    # Nothing device-based is retained any more; the entities are.
    assert await retained_entities(mosquitto, DEVICE_DISCOVERY) == {}
    assert len(await retained_entities(mosquitto)) == len(ENTITIES)
    # Done once: the record now names the per-entity messages.
    assert server.stop() == 0
    server.start()
    await wait_online(mosquitto)
    assert "mqtt: migrated" not in server.log().rsplit("board ready", 1)[-1]


async def test_device_based_discovery_with_a_pin_gone_is_removed_first(
        make_server: Any, mosquitto: LocalBroker) -> None:
    """A pin that left would stay an orphan through a migration: the old device goes."""
    server = await started(make_server, mosquitto)
    assert server.stop() == 0
    seed_device_based_discovery(server, mosquitto, {**LEGACY_COMPONENTS, "old": "switch"})
    async with probe(mosquitto, DEVICE_DISCOVERY, DISCOVERY, f"{BASE}/status") as watch:
        await watch.wait_for(DEVICE_DISCOVERY, retain=True)
        mark = watch.mark
        server.start()
        removed = await watch.wait_for(DEVICE_DISCOVERY, since=mark, retain=False)
        assert removed.payload == b""
        config = await watch.wait_for(entity("switch", "lamp"), since=mark, retain=False)
        assert watch.received.index(removed) < watch.received.index(config)
        await watch.wait_for(f"{BASE}/status", "online", since=mark)  # logged before it
    assert not [m for m in watch.received[mark:]
                if m.topic == DEVICE_DISCOVERY and m.payload != b""]
    assert "mqtt: removed Home Assistant's device-based discovery" in server.log()
    assert await retained_entities(mosquitto, DEVICE_DISCOVERY) == {}


async def test_clean_stop_says_offline_and_a_crash_leaves_the_will(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = await started(make_server, mosquitto)
    async with probe(mosquitto, f"{BASE}/status") as watch:
        await watch.wait_for(f"{BASE}/status", "online")
        mark = watch.mark
        assert server.stop() == 0
        await watch.wait_for(f"{BASE}/status", "offline", since=mark)
        assert "Traceback" not in server.log()

        server.start()
        mark = watch.mark
        await watch.wait_for(f"{BASE}/status", "online", since=mark)
        mark = watch.mark
        server.kill()  # no goodbye: the broker publishes the last will
        await watch.wait_for(f"{BASE}/status", "offline", since=mark)
    async with probe(mosquitto, f"{BASE}/status") as fresh:
        await fresh.wait_for(f"{BASE}/status", "offline", retain=True)
