"""Bridged sites: each site's mosquitto bridged to a central one, the hub on the central one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pinpanel.local_broker import LocalBroker
from tests.hub.conftest import hub_config, pi_config, wait_devices

pytestmark = pytest.mark.mqtt


def site_bridge(site: str, central: LocalBroker) -> list[str]:
    """The README's bridge section for one site (see "Bridged sites")."""
    return [f"connection {site}", f"address 127.0.0.1:{central.port}",
            f"remote_clientid bridge-{site}", "cleansession true",
            "topic pinpanel/# both 1", "notifications true",
            f"notification_topic pinpanel/fleet/bridge/{site}", "restart_timeout 1 2",
            "keepalive_interval 5"]


def test_a_site_down_shows_its_pis_unreachable_and_back_restores_them(
        make_server: Any, tmp_path: Path) -> None:
    central = LocalBroker(tmp_path / "central").start()
    site_a = LocalBroker(tmp_path / "site-a")
    site_a.extra = site_bridge("site-a", central)
    site_b = LocalBroker(tmp_path / "site-b")
    site_b.extra = site_bridge("site-b", central)
    try:
        site_a.start()
        site_b.start()
        make_server(pi_config(site_a, "pa"), name="pa")
        make_server(pi_config(site_b, "pb"), name="pb")
        hub = make_server(hub_config(central, probe_ms=1000), name="hub")
        both = wait_devices(hub, lambda s: all(s.get(d, {}).get("online") for d in ("pa", "pb")))
        assert all(len(both[d]["pins"]) == 3 for d in ("pa", "pb"))
        with hub.client() as http:
            answer = http.post("/api/v1/hub/commands", json={"action": "on", "group": "garden"},
                               timeout=30).json()
        assert {r["device"]: r["status"] for r in answer["results"]} == {
            "pa": "confirmed", "pb": "confirmed"}

        site_a.kill()  # the site's broker (and with it its bridge) is gone
        wait_devices(hub, lambda s: s["pa"]["status"] == "unreachable" and s["pb"]["online"])
        with hub.client() as http:
            answer = http.post("/api/v1/hub/commands", json={
                "action": "off", "group": "garden", "timeout_ms": 500}, timeout=30).json()
        assert {r["device"]: r["status"] for r in answer["results"]} == {
            "pa": "timeout", "pb": "confirmed"}

        site_a.start()  # same port: the Pi and the bridge reconnect
        wait_devices(hub, lambda s: s["pa"]["online"] and s["pb"]["online"])
        with hub.client() as http:
            answer = http.post("/api/v1/hub/commands", json={
                "action": "off", "targets": [{"device": "pa", "pin": "lamp"}]},
                timeout=30).json()
        assert answer["results"][0]["status"] == "confirmed"
    finally:
        for broker in (site_a, site_b, central):
            broker.kill()
