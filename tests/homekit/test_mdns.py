"""The bridge announced over mDNS, found and paired by aiohomekit with no address given.

The default namespace's loopback carries no multicast, so this runs in a network namespace
the test makes (loopback up, multicast on), as tests/hub/test_mdns.py does.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import run_in_namespace


def test_the_home_app_finds_the_bridge_over_mdns_and_pairs(tmp_path: Path) -> None:
    result = run_in_namespace("tests.homekit.bridge_mdns_check", tmp_path)
    before = result["before"]
    assert before["name"].startswith("Shed Pi ")  # HAP-python adds part of the id
    assert before["category"] == 2 and before["paired"] is False  # a bridge, open to pair
    assert result["accessories"] == ["Shed Pi", "Lamp"]
    assert result["paired_after"] is True  # and no longer offered to pair
