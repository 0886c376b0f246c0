"""Pairing's edges, each on its own bridge: the wrong-code limit, ids across config edits,
a live config edit, unpairing from the page's API."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohomekit.exceptions import AccessoryDisconnectedError

from pinpanel.local_broker import free_port
from tests.homekit.controller import HomeKitController, PairingRateLimited, WrongSetupCode
from tests.homekit.test_bridge import eventually
from tests.support import ServerProcess

LAMP = '[[pins]]\npin = 18\nid = "lamp"\nname = "Lamp"\n'
FAN = '[[pins]]\npin = 23\nid = "fan"\nname = "Fan"\nhomekit_type = "fan"\n'
PUMP = '[[pins]]\npin = 24\nid = "pump"\nname = "Pump"\nhomekit_type = "outlet"\n'


@dataclass
class Bridge:
    """A pinpanel with ``[homekit]`` on (``head``: that section, for a config edited later)."""

    server: ServerProcess
    port: int
    head: str

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            (self.server.data_dir / "homekit.state").read_text())
        return state

    def edit(self, pins: str) -> None:
        """Write a new config file (the same ``[homekit]``) for a restart or a SIGHUP."""
        self.server.config_text = self.head + pins
        self.server.config_path.write_text(self.server.config_text)

    async def pair(self, controller: HomeKitController) -> Any:
        """Pair as the Home app does, once the pairing is on disk (a worker thread writes
        HAP-python's file after the answer); the pairing is saved as ``home``."""
        pairing = await controller.pair(("127.0.0.1", self.port), self.state()["pincode"],
                                        "home")
        controller.save("home")
        assert await eventually(lambda: self.state()["paired_clients"] != {})
        return pairing


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Callable[[str], Bridge]]:
    started: list[ServerProcess] = []

    def start(body: str) -> Bridge:
        port = free_port()
        head = f"[homekit]\nenabled = true\nport = {port}\n"
        server = ServerProcess(tmp_path / "data", config_text=head + body)
        server.data_dir.mkdir()
        started.append(server.start())
        return Bridge(server, port, head)

    yield start
    for server in started:
        server.stop()


async def test_wrong_codes_beyond_the_limit_refuse_even_the_right_one(
        bridge: Callable[[str], Bridge], tmp_path: Path) -> None:
    limited = bridge("pair_attempts_per_minute = 2\n")
    code, log = limited.state()["pincode"], limited.server.log
    async with HomeKitController(tmp_path) as controller:
        for guess in ("101-48-005", "101-48-006"):
            with pytest.raises(WrongSetupCode):
                await controller.pair(("127.0.0.1", limited.port), guess, "guess", attempts=1)
        with pytest.raises(PairingRateLimited):  # the limit: the right code waits too
            await controller.pair(("127.0.0.1", limited.port), code, "owner", attempts=1)
    assert limited.state()["paired_clients"] == {}
    assert "pairing refused: 2 wrong setup codes in the last minute" in log()
    assert code not in log()


async def test_accessory_ids_stay_with_their_pins_across_config_edits(
        bridge: Callable[[str], Bridge], tmp_path: Path) -> None:
    home = bridge(LAMP + FAN + PUMP)
    async with HomeKitController(tmp_path) as controller:
        pairing = await home.pair(controller)
        first = {a.name: a.aid for a in await controller.accessories(pairing)}
    version = int(home.state()["config_version"])
    assert first == {"pinpanel": 1, "Lamp": 2, "Fan": 3, "Pump": 4}
    # The lamp goes, a heater comes first, the pump moves up: ids follow the pin ids,
    # and the lamp's number is not handed to the newcomer.
    home.server.stop()
    home.edit('[[pins]]\npin = 5\nid = "heater"\nname = "Heater"\n' + PUMP + FAN)
    home.server.start()
    async with HomeKitController(tmp_path) as controller:
        pairing = controller.load("home")
        second = {a.name: a.aid for a in await controller.accessories(pairing)}
        # Told controllers to read the accessories again (the c# of the mDNS record).
        assert await eventually(lambda: int(home.state()["config_version"]) == version + 1)
        # The admin page's API: the bridge as the page shows it, and unpairing from it.
        own = controller.pairing_data(pairing)["iOSPairingId"].lower()
        with home.server.client() as http:
            shown = http.get("/api/v1/homekit").json()
            assert shown["setup_code"] == home.state()["pincode"]
            assert shown["setup_uri"].startswith("X-HM://")
            assert [c["id"] for c in shown["controllers"]] == [own]
            page = http.get("/homekit")  # the page over the real bridge, as an admin sees it
            assert page.status_code == 200 and shown["setup_code"] in page.text
            assert own in page.text and "<svg" in page.text
            assert http.delete(f"/api/v1/homekit/pairings/{own}").status_code == 204
            assert http.get("/api/v1/homekit").json()["controllers"] == []
        # Its open session was closed with it, and the keys no longer verify.
        with pytest.raises(AccessoryDisconnectedError):
            await controller.accessories(pairing)
    assert second == {"pinpanel": 1, "Heater": 5, "Pump": 4, "Fan": 3}


async def test_a_live_config_edit_reaches_the_paired_controller(
        bridge: Callable[[str], Bridge], tmp_path: Path) -> None:
    """SIGHUP: a new pin appears, a renamed one keeps its id, controllers are told (c#)."""
    home = bridge(LAMP)
    async with HomeKitController(tmp_path) as controller:
        pairing = await home.pair(controller)
        version = int(home.state()["config_version"])
        home.edit(LAMP.replace('"Lamp"', '"Desk lamp"') + FAN)
        assert home.server.proc is not None
        home.server.proc.send_signal(signal.SIGHUP)
        assert await eventually(lambda: int(home.state()["config_version"]) == version + 1)
        listed = await controller.accessories(pairing)
        assert {a.name: a.aid for a in listed} == {"pinpanel": 1, "Desk lamp": 2, "Fan": 3}
        # The new id is on disk, and the pairing made before the edit is still there.
        assert await eventually(
            lambda: home.state()["pinpanel_aids"] == {"pin:lamp": 2, "pin:fan": 3})
        assert home.state()["paired_clients"] != {}
        on = next(a for a in listed if a.name == "Fan").service("FAN").char("ON")
        await controller.put(pairing, on.aid, on.iid, True)
        with home.server.client() as http:
            assert http.get("/api/v1/pins/fan").json()["state"] is True
