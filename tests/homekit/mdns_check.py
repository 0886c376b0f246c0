"""Run inside a fresh network namespace by test_controller_harness.py: pairing found by mDNS.

The HAP fixture announces ``_hap._tcp`` on 127.0.0.1 (HAP-python's own zeroconf, limited by
``interface_choice``) and the controller pairs by device id alone, as the Home app does.
Prints one JSON object. Run as ``python -m tests.homekit.mdns_check DIR``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from aiohomekit.controller.abstract import TransportType

from tests.homekit.conftest import SETUP_CODE, HapFixtureServer
from tests.homekit.controller import HomeKitController


async def check(directory: Path) -> dict[str, object]:
    server = HapFixtureServer(directory / "accessory.state").start()
    try:
        async with HomeKitController(directory) as c:
            device_id = server.ready["device_id"]
            pairing = await c.pair(device_id, SETUP_CODE, "bridge")
            found = c.controller.transports[TransportType.IP].discoveries[device_id.lower()]
            names = [a.name for a in await c.accessories(pairing)]
            return {"device_id": device_id, "pairing_id": pairing.id,
                    "announced": [found.description.address, found.description.port],
                    "port": server.port, "names": names}
    finally:
        server.stop()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(check(Path(sys.argv[1])))))
