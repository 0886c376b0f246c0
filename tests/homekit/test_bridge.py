"""pinpanel's HomeKit bridge as a process, judged by aiohomekit (Home Assistant's controller).

One server for the module, paired once by the first fixture (pair-setup works only while
unpaired, as on a phone); each test then reconnects with the saved pairing (pair-verify, the
encrypted session), as the Home app does every time it opens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinpanel.local_broker import free_port
from tests.homekit.controller import (
    HANG_GUARD,
    Accessory,
    Characteristic,
    HomeKitController,
    WrongSetupCode,
)
from tests.support import ServerProcess

CONFIG = """
[homekit]
enabled = true
port = {port}
name = "Test Pi"

[[pins]]
pin = 18
id = "lamp"
name = "Lamp"

[[pins]]
pin = 12
id = "dimmer"
name = "Dimmer"
mode = "pwm"

[[pins]]
pin = 13
id = "vent"
name = "Vent"
mode = "servo"

[[pins]]
pin = 23
id = "garage"
name = "Garage"
homekit_type = "garage_door"
homekit_door = "closed"
pulse_ms = 100

[[pins]]
pin = 24
id = "closed"
name = "Door closed"
mode = "input"
pull = "down"

[[pins]]
pin = 17
id = "bell"
name = "Bell"
mode = "input"
pull = "down"
homekit_type = "doorbell"

[[pins]]
pin = 25
id = "strike"
name = "Strike"
homekit_type = "lock"

[[pins]]
pin = 22
id = "hidden"
homekit_type = "none"

[[sensors]]
id = "porch"
name = "Porch"
kind = "bme280"
"""


def setup_code(server: ServerProcess) -> str:
    """The code an admin reads off /homekit (here from the file it is kept in)."""
    state = json.loads((server.data_dir / "homekit.state").read_text())
    return str(state["pincode"])


@pytest.fixture(scope="module")
def hk_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hk_port: int) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("homekit") / "data"
    data.mkdir()
    proc = ServerProcess(data, config_text=CONFIG.format(port=hk_port)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pairing_file(server: ServerProcess, hk_port: int,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pair once: a wrong code first (refused, and the right one still works after it)."""
    directory = tmp_path_factory.mktemp("controller")

    async def pair() -> Path:
        async with HomeKitController(directory) as controller:
            with pytest.raises(WrongSetupCode):
                await controller.pair(("127.0.0.1", hk_port), "101-48-005", "wrong", attempts=1)
            await controller.pair(("127.0.0.1", hk_port), setup_code(server), "bridge")
            return controller.save("bridge")

    return asyncio.run(pair())


@pytest.fixture
async def paired(pairing_file: Path) -> AsyncIterator[tuple[HomeKitController, Any]]:
    async with HomeKitController(pairing_file.parent) as controller:
        yield controller, controller.load("bridge", pairing_file)


async def eventually(check: Callable[[], bool]) -> bool:
    """Whether ``check`` holds within the hang guard (polled; not a timing expectation)."""
    for _ in range(int(HANG_GUARD * 20)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def by_name(accessories: list[Accessory]) -> dict[str, Accessory]:
    return {a.name: a for a in accessories}


async def char_of(paired: tuple[HomeKitController, Any], accessory: str, service: str,
                  char: str) -> Characteristic:
    controller, pairing = paired
    return by_name(await controller.accessories(pairing))[accessory].service(service).char(char)


def pin(server: ServerProcess, pin_id: str) -> dict[str, Any]:
    with server.client() as http:
        answer: dict[str, Any] = http.get(f"/api/v1/pins/{pin_id}").json()
    return answer


def history(server: ServerProcess, pin_id: str) -> list[dict[str, Any]]:
    with server.client() as http:
        rows: list[dict[str, Any]] = http.get("/api/v1/history",
                                              params={"pin": pin_id}).json()["items"]
    return rows


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    with server.client() as http:
        return http.post(path, json=body)


async def test_the_bridge_lists_one_accessory_per_pin_and_sensor_with_the_home_app_kinds(
        paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    accessories = await controller.accessories(pairing)
    kinds = {a.name: [s.name for s in a.services if s.name not in (
        "ACCESSORY_INFORMATION", "PROTOCOL_INFORMATION")] for a in accessories}
    assert kinds == {
        "Test Pi": [],
        "Lamp": ["SWITCH"],
        "Dimmer": ["LIGHTBULB"],
        "Vent": ["WINDOW_COVERING"],
        "Garage": ["GARAGE_DOOR_OPENER"],
        "Door closed": ["CONTACT_SENSOR"],
        "Bell": ["STATELESS_PROGRAMMABLE_SWITCH"],
        "Strike": ["LOCK_MECHANISM"],
        "Porch": ["TEMPERATURE_SENSOR", "HUMIDITY_SENSOR"],
    }
    # Each service is named after its pin; the pwm lamp has a brightness.
    named = by_name(accessories)
    assert named["Lamp"].service("SWITCH").label == "Lamp"
    assert named["Dimmer"].service("LIGHTBULB").char("BRIGHTNESS").format == "int"
    # Accessory ids follow the config's order on a first start and are kept from then on.
    assert [a.aid for a in accessories] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


async def test_writing_on_switches_the_pin_through_the_board_as_homekit(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    on = await char_of(paired, "Lamp", "SWITCH", "ON")
    await controller.put(pairing, on.aid, on.iid, True)
    # The answer came after the commit: the API already shows it.
    assert pin(server, "lamp")["state"] is True
    row = history(server, "lamp")[0]
    assert (row["new"], row["actor"], row["cause"]) == (True, "homekit", "homekit")
    own_id = controller.pairing_data(pairing)["iOSPairingId"]
    assert row["client"] == own_id.lower()
    await controller.put(pairing, on.aid, on.iid, False)
    assert pin(server, "lamp")["state"] is False


async def test_a_named_controller_is_named_in_the_history(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    own_id = controller.pairing_data(pairing)["iOSPairingId"].lower()
    with server.client() as http:
        named = http.put(f"/api/v1/homekit/pairings/{own_id}", json={"name": "Anna's home"})
        assert named.json() == {"id": own_id, "admin": True, "name": "Anna's home"}
    on = await char_of(paired, "Lamp", "SWITCH", "ON")
    await controller.put(pairing, on.aid, on.iid, True)
    await controller.put(pairing, on.aid, on.iid, False)
    row = history(server, "lamp")[0]
    assert (row["actor"], row["client"]) == ("homekit", "Anna's home")
    # Kept with the pairing, in the bridge's file (written by a worker thread).
    assert await eventually(lambda: json.loads((server.data_dir / "homekit.state").read_text())
                            .get("pinpanel_names") == {own_id: "Anna's home"})


async def test_a_change_made_over_http_arrives_at_the_controller_as_an_event(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    on = await char_of(paired, "Lamp", "SWITCH", "ON")
    await controller.subscribe(pairing, [on.key])
    assert post(server, "/api/v1/pins/lamp/on", {}).status_code == 200
    event = await controller.next_event(pairing, lambda e: e.key == on.key)
    assert event.value in (True, 1)
    assert post(server, "/api/v1/pins/lamp/off", {}).status_code == 200
    event = await controller.next_event(pairing, lambda e: e.key == on.key)
    assert event.value in (False, 0)


async def test_brightness_sets_the_pwm_level_and_zero_turns_it_off(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    brightness = await char_of(paired, "Dimmer", "LIGHTBULB", "BRIGHTNESS")
    await controller.put(pairing, brightness.aid, brightness.iid, 40)
    view = pin(server, "dimmer")
    assert (view["state"], view["level"]) == (True, 0.4)
    assert history(server, "dimmer")[0]["actor"] == "homekit"
    await controller.put(pairing, brightness.aid, brightness.iid, 0)
    assert pin(server, "dimmer")["state"] is False
    # A level set elsewhere comes back as the brightness.
    on = await char_of(paired, "Dimmer", "LIGHTBULB", "ON")
    await controller.subscribe(pairing, [brightness.key, on.key])
    with server.client() as http:
        assert http.put("/api/v1/pins/dimmer", json={"level": 0.75}).status_code == 200
    event = await controller.next_event(pairing, lambda e: e.key == brightness.key)
    assert event.value == 75


async def test_a_servo_is_a_window_covering_over_its_angle_range(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    target = await char_of(paired, "Vent", "WINDOW_COVERING", "POSITION_TARGET")
    await controller.put(pairing, target.aid, target.iid, 75)
    assert pin(server, "vent")["angle"] == 45.0  # -90..90: 75 % is 45 degrees
    current = await char_of(paired, "Vent", "WINDOW_COVERING", "POSITION_CURRENT")
    assert await controller.get(pairing, current.aid, current.iid) == 75


async def test_a_lock_unlocks_by_switching_its_strike_on(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    target = await char_of(paired, "Strike", "LOCK_MECHANISM", "LOCK_MECHANISM_TARGET_STATE")
    await controller.put(pairing, target.aid, target.iid, 0)  # unsecured
    assert pin(server, "strike")["state"] is True
    await controller.put(pairing, target.aid, target.iid, 1)  # secured
    assert pin(server, "strike")["state"] is False


async def test_the_garage_door_pulses_and_reports_the_door_by_its_input(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    assert post(server, "/api/v1/pins/closed/simulate", {"level": "high"}).status_code == 200
    current = await char_of(paired, "Garage", "GARAGE_DOOR_OPENER", "DOOR_STATE_CURRENT")
    target = await char_of(paired, "Garage", "GARAGE_DOOR_OPENER", "DOOR_STATE_TARGET")
    assert await controller.get(pairing, current.aid, current.iid) == 1  # closed
    contact = await char_of(paired, "Door closed", "CONTACT_SENSOR", "CONTACT_STATE")
    assert await controller.get(pairing, contact.aid, contact.iid) == 0  # contact detected
    await controller.subscribe(pairing, [current.key, contact.key])
    await controller.put(pairing, target.aid, target.iid, 0)  # open
    opening = await controller.next_event(pairing, lambda e: e.key == current.key)
    assert opening.value == 2  # opening: the pulse went out, the door is on its way
    pulse = [r for r in history(server, "garage") if r["actor"] == "homekit"]
    assert pulse and pulse[0]["new"] is True  # the pulse, through the board
    # The reed switch lets go: the door is open.
    assert post(server, "/api/v1/pins/closed/simulate", {"level": "low"}).status_code == 200
    # The door is open, and the input, a contact sensor of its own too, says no contact.
    moved: dict[tuple[int, int], Any] = {}
    while len(moved) < 2:
        event = await controller.next_event(
            pairing, lambda e: e.key in (current.key, contact.key) and e.key not in moved)
        moved[event.key] = event.value
    assert moved == {current.key: 0, contact.key: 1}


async def test_an_input_press_and_a_sensor_reading_reach_the_controller_as_events(
        server: ServerProcess, paired: tuple[HomeKitController, Any]) -> None:
    controller, pairing = paired
    press = await char_of(paired, "Bell", "STATELESS_PROGRAMMABLE_SWITCH",
                          "INPUT_EVENT")
    temperature = await char_of(paired, "Porch", "TEMPERATURE_SENSOR", "TEMPERATURE_CURRENT")
    humidity = await char_of(paired, "Porch", "HUMIDITY_SENSOR", "RELATIVE_HUMIDITY_CURRENT")
    await controller.subscribe(pairing, [press.key, temperature.key, humidity.key])
    assert post(server, "/api/v1/pins/bell/simulate", {"level": "high"}).status_code == 200
    rang = await controller.next_event(pairing, lambda e: e.key == press.key)
    assert rang.value == 0  # a single press
    assert post(server, "/api/v1/pins/bell/simulate", {"level": "low"}).status_code == 200
    assert post(server, "/api/v1/sensors/porch/simulate",
                {"reading": "temperature", "value": 21.5}).status_code == 200
    # The simulated sensor reads on its own too: wait for the value set here.
    warm = await controller.next_event(pairing, lambda e: e.key == temperature.key
                                       and e.value == 21.5)
    assert warm.value == 21.5
    assert post(server, "/api/v1/sensors/porch/simulate",
                {"reading": "humidity", "value": 48.0}).status_code == 200
    damp = await controller.next_event(pairing, lambda e: e.key == humidity.key
                                       and e.value == 48)
    assert damp.value == 48


async def test_the_setup_code_is_in_no_log(server: ServerProcess, pairing_file: Path) -> None:
    code = setup_code(server)
    log = server.log()
    assert "homekit: bridge 'Test Pi'" in log
    assert code not in log and code.replace("-", "") not in log


async def test_a_pairing_survives_a_restart_and_unpairing_removes_it(
        server: ServerProcess, paired: tuple[HomeKitController, Any], tmp_path: Path) -> None:
    controller, pairing = paired
    server.stop()
    server.start()
    on = await char_of(paired, "Lamp", "SWITCH", "ON")  # reconnects: pair-verify again
    await controller.put(pairing, on.aid, on.iid, True)
    assert pin(server, "lamp")["state"] is True
    listed = await controller.list_pairings(pairing)
    own_id = controller.pairing_data(pairing)["iOSPairingId"]
    assert [p["pairingId"] for p in listed] == [own_id]
    await controller.remove_pairing(pairing)
    # HAP-python writes the file in a worker thread after answering.
    assert await eventually(lambda: json.loads(
        (server.data_dir / "homekit.state").read_text())["paired_clients"] == {})
    assert "controller" in server.log() and "unpaired" in server.log()
