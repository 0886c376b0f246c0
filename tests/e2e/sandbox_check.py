"""Run by test_service_sandbox.py in a network namespace, under the unit's socket families:
a server on 0.0.0.0 with mDNS and the HomeKit bridge, as the systemd service runs one.

Prints one JSON object: whether it became ready, and its log. ``python -m
tests.e2e.sandbox_check DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pinpanel.local_broker import free_port
from tests.support import ServerProcess

CONFIG = """
[gpio]
backend = "simulated"
[mdns]
enabled = true
[homekit]
enabled = true
port = {port}
[[pins]]
pin = 17
id = "lamp"
"""


def main(directory: Path) -> None:
    data = directory / "data"
    data.mkdir()
    server = ServerProcess(data, config_text=CONFIG.format(port=free_port()),
                           extra_args=("--host", "0.0.0.0"))
    try:
        server.start()
        with server.client() as http:
            ready = http.get("/api/v1/homekit").json()
    except RuntimeError as exc:
        ready = {"error": str(exc)[-2000:]}
    finally:
        server.stop()
    print(json.dumps({"homekit": ready, "log": server.log()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
