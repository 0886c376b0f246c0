"""A bare HAP-python bridge in a process of its own: the target the controller harness is proven on.

Not pinpanel: tests/homekit/controller.py must be shown to pair, read, write, subscribe and
unpair against a known-good HomeKit accessory before it is trusted to judge pinpanel's bridge.
It also shows, in 60 lines, the HAP-python calls the bridge needs: the driver on an already
running asyncio loop, the paired controller's id inside a write, the pair and unpair hooks, and
no setup code on stdout.

Run as ``python -m tests.homekit.hap_fixture_server --port P --state FILE --pincode 123-45-678``.
It speaks JSON lines. Out (stdout): ``{"ready": {"port", "device_id", "setup_id"}}`` once the HAP
server listens, ``{"set": {"aid", "iid", "value", "controller"}}`` for each write from a controller
(``controller`` the pairing id HomeKit sent, a UUID string), ``{"paired": id}``,
``{"unpaired": id}``, ``{"persisted": [paired ids]}`` after each write of the state file.
In (stdin): ``{"set": [aid, iid, value]}`` changes a value on the accessory's side (pushed as
an event to the subscribed controllers); ``{"unpair": id}`` removes a pairing there (then says
``{"sessions_closed": id}``). EOF on stdin or SIGTERM stops the driver cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from typing import Any
from uuid import UUID

from pyhap.accessory import Accessory, Bridge
from pyhap.accessory_driver import AccessoryDriver
from pyhap.const import CATEGORY_LIGHTBULB, CATEGORY_SENSOR, CATEGORY_SWITCH

_STDOUT = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    # One line per message even when persist() reports from HAP-python's executor thread.
    with _STDOUT:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


class QuietBridge(Bridge):
    """A bridge that never prints its setup code.

    HAP-python's ``Accessory.setup_message`` prints the pincode to stdout on every unpaired
    start (pyhap/accessory.py ``setup_message``), which in a service is the journal.
    """

    def setup_message(self) -> None:
        pass


class Driver(AccessoryDriver):
    """Tells which paired controller made each write, and reports pairings as they change.

    ``set_characteristics(chars_query, client_addr)`` runs synchronously in the loop and calls
    every setter inside it, so the connection's ``client_uuid`` (set by pair-verify) is the
    writer's identity for the duration of the call. Works on HAP-python 5.0 and 5.2 alike
    (5.2 also passes the address to a setter whose parameter is named ``sender_client_addr``).
    """

    writer: str | None = None

    def set_characteristics(self, chars_query: dict[str, Any],
                            client_addr: tuple[str, int]) -> dict[str, Any] | None:
        connection = self.http_server.connections.get(client_addr)
        uuid = connection.handler.client_uuid if connection and connection.handler else None
        self.writer = str(uuid) if uuid else None
        try:
            result: dict[str, Any] | None = super().set_characteristics(chars_query, client_addr)
            return result
        finally:
            self.writer = None

    def pair(self, client_username_bytes: bytes, client_public: bytes,
             client_permissions: bytes) -> bool:
        emit({"paired": client_username_bytes.decode()})
        return bool(super().pair(client_username_bytes, client_public, client_permissions))

    def unpair(self, client_uuid: Any) -> None:
        emit({"unpaired": str(client_uuid)})
        super().unpair(client_uuid)

    def unpair_from_here(self, client_id: str) -> None:
        """Remove a pairing on the accessory's side, as pinpanel's page would.

        ``unpair`` only edits the state: HAP-python serves an established session on
        ``is_encrypted`` alone (pyhap/hap_handler.py handle_get/set_characteristics), so the
        removed controller's open connections are closed here, or it would keep control
        until it reconnects. The announcement goes back to ``sf=1`` once nobody is paired.
        """
        client_uuid = UUID(client_id)
        self.unpair(client_uuid)
        for connection in list(self.http_server.connections.values()):
            if connection.handler is not None and connection.handler.client_uuid == client_uuid:
                connection.close()
        self.async_update_advertisement()
        emit({"sessions_closed": client_id})

    def persist(self) -> None:
        # pair() and unpair() save the state file in the executor after answering
        # (async_persist), so a test reading the file waits for this message first.
        super().persist()
        emit({"persisted": sorted(str(c) for c in self.state.paired_clients)})


def build(driver: Driver) -> QuietBridge:
    bridge = QuietBridge(driver, "Fixture Bridge")
    lamp = Accessory(driver, "Lamp", aid=2)
    lamp.category = CATEGORY_SWITCH
    lamp.add_preload_service("Switch", chars=["On"])
    door = Accessory(driver, "Door", aid=3)
    door.category = CATEGORY_SENSOR
    door.add_preload_service("ContactSensor", chars=["ContactSensorState"])
    dimmer = Accessory(driver, "Dimmer", aid=4)
    dimmer.category = CATEGORY_LIGHTBULB
    dimmer.add_preload_service("Lightbulb", chars=["On", "Brightness"])
    for accessory in (lamp, door, dimmer):
        bridge.add_accessory(accessory)
        for service in accessory.services:
            for char in service.characteristics:
                if "pw" in char.properties.get("Permissions", []):
                    char.setter_callback = _reporter(driver, accessory, char)
    return bridge


def _reporter(driver: Driver, accessory: Accessory, char: Any) -> Any:
    def report(value: Any) -> None:
        iid = accessory.iid_manager.get_iid(char)
        emit({"set": {"aid": accessory.aid, "iid": iid, "value": value,
                      "controller": driver.writer}})
    return report


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    driver = Driver(loop=loop, address="127.0.0.1", port=args.port, persist_file=args.state,
                    pincode=args.pincode.encode(), interface_choice=["127.0.0.1"])
    bridge = build(driver)
    driver.add_accessory(bridge)
    await driver.async_start()
    emit({"ready": {"port": args.port, "device_id": driver.state.mac,
                    "setup_id": driver.state.setup_id}})

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        while line := await reader.readline():
            command = json.loads(line)
            if "unpair" in command:
                driver.unpair_from_here(command["unpair"])
                continue
            aid, iid, value = command["set"]
            accessory = bridge if aid == 1 else bridge.accessories[aid]
            accessory.iid_manager.get_obj(iid).set_value(value)
        stop.set()

    task = asyncio.create_task(commands())
    await stop.wait()
    task.cancel()
    await driver.async_stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--pincode", required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
