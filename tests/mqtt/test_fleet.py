"""``pinpanel fleet-sim`` and the latency measurement the benchmark harness calls."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from typing import Any

import pytest
from bench.mqtt_latency import measure_latency_async
from tests.mqtt.conftest import probe
from tests.support import pinpanel_cmd, run_cli

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt


async def test_fleet_sim_runs_devices_against_one_broker(mosquitto: LocalBroker,
                                                         tmp_path: Any) -> None:
    log = (tmp_path / "fleet.log").open("wb")
    proc = subprocess.Popen(pinpanel_cmd("fleet-sim", "--devices", "3", "--broker",
                                         mosquitto.address, "--discovery"),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        async with probe(mosquitto, "pinpanel/#", "homeassistant/#") as watch:
            for n in (1, 2, 3):
                await watch.wait_for(f"pinpanel/sim-000{n}/status", "online")
                await watch.wait_for(f"homeassistant/switch/pinpanel_sim-000{n}/gpio18/config")
                await watch.wait_for(f"pinpanel/sim-000{n}/gpio18/state", "OFF")
            mark = watch.mark
            await watch.publish("pinpanel/sim-0002/gpio23/set", "ON")
            await watch.wait_for("pinpanel/sim-0002/gpio23/state", "ON", since=mark)
            # Only the device addressed changed.
            assert not [m for m in watch.received[mark:]
                        if m.topic.endswith("/state") and "sim-0002/gpio23" not in m.topic]
            mark = watch.mark
            proc.send_signal(signal.SIGTERM)
            for n in (1, 2, 3):
                await watch.wait_for(f"pinpanel/sim-000{n}/status", "offline", since=mark)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "fleet.log").read_text()
    assert "fleet-sim: 3 devices online" in output
    assert "Traceback" not in output


def test_fleet_sim_refuses_bad_arguments() -> None:
    result = run_cli("fleet-sim", "--devices", "0", "--broker", "nowhere:x")
    assert result.returncode == 3
    assert "--devices must be 1 to 1000" in result.stderr
    assert "--broker" in result.stderr


async def test_measure_latency_reports_percentiles(mosquitto: LocalBroker) -> None:
    report = await measure_latency_async(mosquitto.address, devices=2, commands=12, pins=2)
    assert report.devices == 2
    assert report.commands == 12
    assert report.lost == 0
    assert 0 < report.p50_ms <= report.p99_ms <= report.max_ms
    assert set(report.as_json()) == {"devices", "commands", "p50_ms", "p99_ms", "mean_ms",
                                     "max_ms", "lost"}
