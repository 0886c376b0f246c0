"""mDNS/DNS-SD in a network namespace the test makes (its own loopback, multicast on)."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_in_namespace


def test_a_pi_announces_itself_and_the_hub_lists_it_linked_not_controlled(
        tmp_path: Path) -> None:
    result = run_in_namespace("tests.hub.mdns_check", tmp_path)
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
