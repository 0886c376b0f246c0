"""The hub across a broker cluster: Debian's RabbitMQ with its MQTT plugin, two nodes.

The Pi connects to node a, the hub to node b. RabbitMQ 3.10 keeps retained messages per node
(they are not replicated), so the hub on node b cannot learn the Pi from retained messages:
its refresh request, routed across the cluster like any message, makes the Pi publish
everything again. The cluster boots once for the module (it takes tens of seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub.conftest import hub_config, pi_config, wait_devices
from tests.hub.rabbit import SERVER, RabbitCluster

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    if not SERVER.exists():
        pytest.skip("Debian's rabbitmq-server is not installed (scripts/test installs it)")
    started = RabbitCluster(tmp_path_factory.mktemp("rabbit")).start()
    try:
        yield started
    finally:
        started.stop()


def test_a_pi_on_one_node_and_the_hub_on_the_other(make_server: Any, cluster: RabbitCluster,
                                                   tmp_path: Path) -> None:
    node_a, node_b = cluster.nodes
    assert node_b.node in node_a.ctl("cluster_status")
    pi = make_server(pi_config(node_a, "rq1"), name="rq1")
    hub = make_server(hub_config(node_b), name="hub")
    seen = wait_devices(hub, lambda s: s.get("rq1", {}).get("online") and len(
        s["rq1"]["pins"]) == 3 and all("seq" in p for p in s["rq1"]["pins"]), timeout=60)
    assert seen["rq1"]["url"] == f"http://127.0.0.1:{pi.port}/"

    with hub.client() as http:
        answer = http.post("/api/v1/hub/commands", json={
            "action": "on", "targets": [{"device": "rq1", "pin": "lamp"}]}, timeout=30).json()
    (row,) = answer["results"]
    assert row["status"] == "confirmed", row
    with pi.client() as http:
        assert http.get("/api/v1/pins/lamp").json()["seq"] == row["seq"]

    # The hub restarted on node b: nothing retained reaches it from node a's Pi, the refresh
    # does, and the picture is whole again (with the lamp on).
    hub.kill()
    hub.start()
    wait_devices(hub, lambda s: any(p["id"] == "lamp" and p.get("state") is True
                                    and p.get("seq") == row["seq"]
                                    for p in s.get("rq1", {}).get("pins", [])), timeout=60)

    # The Pi vanishes: its last will, published on node a, reaches the hub on node b.
    pi.kill()
    wait_devices(hub, lambda s: s["rq1"]["status"] == "offline", timeout=60)
    pi.start()
    wait_devices(hub, lambda s: s["rq1"]["online"], timeout=60)
