"""The bridge announced over mDNS, found and paired by aiohomekit with no address given.

The default namespace's loopback carries no multicast, so this runs in a network namespace
the test makes (loopback up, multicast on), as tests/hub/test_mdns.py does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETUP = ("ip link set lo up && ip link set lo multicast on && "
         "ip route add 224.0.0.0/4 dev lo && exec \"$0\" -m tests.homekit.bridge_mdns_check \"$1\"")


def test_the_home_app_finds_the_bridge_over_mdns_and_pairs(tmp_path: Path) -> None:
    done = subprocess.run(["unshare", "--net", "sh", "-c", SETUP, sys.executable,
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    before = result["before"]
    assert before["name"].startswith("Shed Pi ")  # HAP-python adds part of the id
    assert before["category"] == 2 and before["paired"] is False  # a bridge, open to pair
    assert result["accessories"] == ["Shed Pi", "Lamp"]
    assert result["paired_after"] is True  # and no longer offered to pair
