"""Run inside a fresh network namespace by test_mdns.py: a Pi announces, a hub finds it.

Prints one JSON object: what a plain DNS-SD browser saw of each service type, and the Pi
as the hub's API lists it. Run as ``python -m tests.hub.mdns_check DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.support import ServerProcess

MDNS = '[mdns]\nenabled = true\ninterfaces = ["127.0.0.1"]\n'
PI = '[gpio]\nbackend = "simulated"\n[mqtt]\ndevice_id = "lan-pi"\n' + MDNS + """
[[pins]]
pin = 17
id = "lamp"
"""
HUB = ('[gpio]\nbackend = "simulated"\n[mqtt]\nhost = "127.0.0.1"\nport = 9\n'
       '[hub]\nenabled = true\n' + MDNS + '[[pins]]\npin = 4\nid = "led"\n')


def browse(kind: str, timeout: float = 30) -> dict[str, Any] | None:
    from zeroconf import ServiceBrowser, Zeroconf

    zc = Zeroconf(interfaces=["127.0.0.1"])
    found: list[str] = []

    class Listener:
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            found.append(name)

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

    ServiceBrowser(zc, kind, Listener())
    try:
        deadline = time.monotonic() + timeout
        name = f"lan-pi.{kind}"  # the hub announces itself too
        while time.monotonic() < deadline and name not in found:
            time.sleep(0.1)
        if name not in found:
            return {"names": found}
        info = zc.get_service_info(kind, name, 5000)
        if info is None:
            return {"name": name}
        return {"name": name, "port": info.port, "addresses": info.parsed_addresses(),
                "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()}}
    finally:
        zc.close()


def main(directory: Path) -> None:
    pi = ServerProcess(directory / "pi", PI).start()
    hub = ServerProcess(directory / "hub", HUB).start()
    try:
        seen = {kind: browse(kind) for kind in ("_pinpanel._tcp.local.", "_http._tcp.local.")}
        listed = None
        deadline = time.monotonic() + 60
        with hub.client() as http:
            while time.monotonic() < deadline and listed is None:
                devices = http.get("/api/v1/hub/devices").json()["devices"]
                listed = next((d for d in devices if d["device_id"] == "lan-pi"), None)
                time.sleep(0.2)
        print(json.dumps({"pi_port": pi.port, "browsed": seen, "hub": listed}))
    finally:
        pi.kill()
        hub.kill()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
