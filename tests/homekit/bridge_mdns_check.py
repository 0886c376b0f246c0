"""Run inside a fresh network namespace by test_mdns.py: the Home app's way of finding a bridge.

A pinpanel with ``[homekit]`` announces ``_hap._tcp``; aiohomekit finds it by its device id
over mDNS alone (no address given), pairs, and sees the announcement say "paired" after.
Prints one JSON object. Run as ``python -m tests.homekit.bridge_mdns_check DIR``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pinpanel.local_broker import free_port
from tests.homekit.controller import HomeKitController
from tests.support import ServerProcess

CONFIG = """
[gpio]
backend = "simulated"
[mdns]
interfaces = ["127.0.0.1"]
[homekit]
enabled = true
port = {port}
name = "Shed Pi"
[[pins]]
pin = 17
id = "lamp"
name = "Lamp"
"""


async def find_and_pair(server: ServerProcess, directory: Path) -> dict[str, Any]:
    state = json.loads((server.data_dir / "homekit.state").read_text())
    device_id = state["mac"].lower()
    async with HomeKitController(directory) as controller:
        found = await controller.controller.async_find(device_id, timeout=30)
        before = {"name": found.description.name, "port": found.description.port,
                  "category": int(found.description.category),
                  "paired": found.paired}
        pairing = await controller.pair(device_id, state["pincode"], "shed")
        names = [a.name for a in await controller.accessories(pairing)]
        after = await controller.controller.async_find(device_id, timeout=30)
        for _ in range(300):  # the record is re-announced once the pairing is finished
            if after.paired:
                break
            await asyncio.sleep(0.1)
            after = await controller.controller.async_find(device_id, timeout=30)
        return {"before": before, "accessories": names, "paired_after": after.paired}


def main(directory: Path) -> None:
    data = directory / "pi"
    data.mkdir()
    server = ServerProcess(data, config_text=CONFIG.format(port=free_port())).start()
    try:
        result = asyncio.run(find_and_pair(server, directory))
    finally:
        server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
