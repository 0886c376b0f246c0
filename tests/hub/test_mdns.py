"""mDNS/DNS-SD in a network namespace the test makes (its own loopback, multicast on)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = ("ip link set lo up && ip link set lo multicast on && "
         "ip route add 224.0.0.0/4 dev lo && exec \"$0\" -m tests.hub.mdns_check \"$1\"")


def test_a_pi_announces_itself_and_the_hub_lists_it_linked_not_controlled(
        tmp_path: Path) -> None:
    pytest.importorskip("zeroconf", reason="the test extra installs zeroconf")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to make a network namespace")
    done = subprocess.run(["unshare", "--net", "sh", "-c", SETUP, sys.executable,
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    port = result["pi_port"]
    for kind in ("_pinpanel._tcp.local.", "_http._tcp.local."):
        seen = result["browsed"][kind]
        assert seen is not None, f"no {kind} service announced"
        assert seen["name"] == f"lan-pi.{kind}"
        assert seen["port"] == port and seen["addresses"] == ["127.0.0.1"]
        assert seen["txt"]["device_id"] == "lan-pi" and seen["txt"]["path"] == "/"
    listed = result["hub"]
    assert listed is not None, "the hub never listed the Pi it found on the LAN"
    assert listed["url"] == f"http://127.0.0.1:{port}/"
    assert listed["sources"] == ["mdns"] and listed["controllable"] is False
    assert listed["online"] is True and listed["version"]
