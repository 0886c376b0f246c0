"""Pairing's edges, each on its own bridge: the wrong-code limit, ids across config edits."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from aiohomekit.exceptions import AccessoryDisconnectedError

from pinpanel.local_broker import free_port
from tests.homekit.controller import HomeKitController, PairingRateLimited, WrongSetupCode
from tests.homekit.test_bridge import eventually
from tests.support import ServerProcess


def homekit_state(server: ServerProcess) -> dict[str, object]:
    state: dict[str, object] = json.loads((server.data_dir / "homekit.state").read_text())
    return state


async def test_wrong_codes_beyond_the_limit_refuse_even_the_right_one(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(tmp_path / "data", config_text=f"""
[homekit]
enabled = true
port = {port}
pair_attempts_per_minute = 2
""")
    server.data_dir.mkdir()
    server.start()
    try:
        code = str(homekit_state(server)["pincode"])
        async with HomeKitController(tmp_path) as controller:
            for guess in ("101-48-005", "101-48-006"):
                with pytest.raises(WrongSetupCode):
                    await controller.pair(("127.0.0.1", port), guess, "guess", attempts=1)
            with pytest.raises(PairingRateLimited):  # the limit: the right code waits too
                await controller.pair(("127.0.0.1", port), code, "owner", attempts=1)
        assert homekit_state(server)["paired_clients"] == {}
        assert "pairing refused: 2 wrong setup codes in the last minute" in server.log()
        assert code not in server.log()
    finally:
        server.stop()


async def test_accessory_ids_stay_with_their_pins_across_config_edits(tmp_path: Path) -> None:
    port = free_port()
    pins = ['[[pins]]\npin = 18\nid = "lamp"\nname = "Lamp"\n',
            '[[pins]]\npin = 23\nid = "fan"\nname = "Fan"\nhomekit_type = "fan"\n',
            '[[pins]]\npin = 24\nid = "pump"\nname = "Pump"\nhomekit_type = "outlet"\n']
    head = f"[homekit]\nenabled = true\nport = {port}\n"
    server = ServerProcess(tmp_path / "data", config_text=head + "".join(pins))
    server.data_dir.mkdir()
    server.start()
    try:
        async with HomeKitController(tmp_path) as controller:
            pairing = await controller.pair(("127.0.0.1", port),
                                            str(homekit_state(server)["pincode"]), "home")
            first = {a.name: a.aid for a in await controller.accessories(pairing)}
            controller.save("home")
        # The pairing's own write of the file (a worker thread) holds the version too.
        assert await eventually(lambda: homekit_state(server)["paired_clients"] != {})
        version = int(str(homekit_state(server)["config_version"]))
        assert first == {"pinpanel": 1, "Lamp": 2, "Fan": 3, "Pump": 4}
        # The lamp goes, a heater comes first, the pump moves up: ids follow the pin ids,
        # and the lamp's number is not handed to the newcomer.
        server.stop()
        server.config_text = head + '[[pins]]\npin = 5\nid = "heater"\nname = "Heater"\n' + \
            pins[2] + pins[1]
        server.start()
        async with HomeKitController(tmp_path) as controller:
            pairing = controller.load("home")
            second = {a.name: a.aid for a in await controller.accessories(pairing)}
            # Told controllers to read the accessories again (the c# of the mDNS record).
            assert await eventually(
                lambda: int(str(homekit_state(server)["config_version"])) == version + 1)
            # The admin page's API: the bridge as the page shows it, and unpairing from it.
            own = controller.pairing_data(pairing)["iOSPairingId"].lower()
            with server.client() as http:
                shown = http.get("/api/v1/homekit").json()
                assert shown["setup_code"] == homekit_state(server)["pincode"]
                assert shown["setup_uri"].startswith("X-HM://")
                assert [c["id"] for c in shown["controllers"]] == [own]
                assert http.delete(f"/api/v1/homekit/pairings/{own}").status_code == 204
                assert http.get("/api/v1/homekit").json()["controllers"] == []
            # Its open session was closed with it, and the keys no longer verify.
            with pytest.raises(AccessoryDisconnectedError):
                await controller.accessories(pairing)
        assert second == {"pinpanel": 1, "Heater": 5, "Pump": 4, "Fan": 3}
    finally:
        server.stop()


async def test_a_live_config_edit_reaches_the_paired_controller(tmp_path: Path) -> None:
    """SIGHUP: a new pin appears, a renamed one keeps its id, controllers are told (c#)."""
    port = free_port()
    head = f"[homekit]\nenabled = true\nport = {port}\n"
    lamp = '[[pins]]\npin = 18\nid = "lamp"\nname = "Lamp"\n'
    server = ServerProcess(tmp_path / "data", config_text=head + lamp)
    server.data_dir.mkdir()
    server.start()
    try:
        async with HomeKitController(tmp_path) as controller:
            pairing = await controller.pair(("127.0.0.1", port),
                                            str(homekit_state(server)["pincode"]), "home")
            assert await eventually(lambda: homekit_state(server)["paired_clients"] != {})
            version = int(str(homekit_state(server)["config_version"]))
            server.config_path.write_text(
                head + lamp.replace('"Lamp"', '"Desk lamp"') +
                '[[pins]]\npin = 23\nid = "fan"\nname = "Fan"\nhomekit_type = "fan"\n')
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            assert await eventually(
                lambda: int(str(homekit_state(server)["config_version"])) == version + 1)
            listed = {a.name: a.aid for a in await controller.accessories(pairing)}
            assert listed == {"pinpanel": 1, "Desk lamp": 2, "Fan": 3}
            # The new id is on disk, and the pairing made before the edit is still there.
            assert await eventually(lambda: homekit_state(server)["pinpanel_aids"] == {
                "pin:lamp": 2, "pin:fan": 3})
            assert homekit_state(server)["paired_clients"] != {}
            fan = next(a for a in await controller.accessories(pairing) if a.name == "Fan")
            on = fan.service("FAN").char("ON")
            await controller.put(pairing, on.aid, on.iid, True)
            with server.client() as http:
                assert http.get("/api/v1/pins/fan").json()["state"] is True
    finally:
        server.stop()
