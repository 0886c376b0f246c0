"""``python -m bench.hub_latency``: the hub's command-to-confirmation time, and its cost.

For each broker layout (``direct``: one mosquitto; ``bridge``: the Pis on a site mosquitto
bridged to a central one where the hub is; ``cluster``: two RabbitMQ nodes, the Pis on one,
the hub on the other) and fleet size, ``pinpanel fleet-sim`` runs the Pis and an in-process
:class:`~pinpanel.hub.core.Hub` sends commands one at a time to random Pis, measuring from
the publish on the Pi's ``set`` topic to the Pi's ``result`` (broker in, the Pi's board and
durable commit, broker out), then one fleet-wide ``all`` command and how long its full
result table took. ``--cost`` instead runs ``pinpanel hub`` as a process over the fleet and
reads its RSS and CPU from /proc, idle and with every Pi changing a pin every 10 s.
Prints one JSON object per run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from bench.stats import percentile
from pinpanel.config import Config, HubConfig, MdnsConfig, MqttConfig
from pinpanel.local_broker import LocalBroker, free_port

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def layout(kind: str, root: Path) -> Iterator[tuple[int, int]]:
    """(port the Pis use, port the hub uses) for one broker layout."""
    if kind == "direct":
        with LocalBroker(root / "broker") as broker:
            yield broker.port, broker.port
    elif kind == "bridge":
        with LocalBroker(root / "central") as central:
            site = LocalBroker(root / "site", extra=[
                "connection site", f"address 127.0.0.1:{central.port}",
                "remote_clientid bridge-site", "cleansession true", "topic pinpanel/# both 1",
                "notifications true", "notification_topic pinpanel/fleet/bridge/site"])
            with site:
                yield site.port, central.port
    else:
        sys.path.insert(0, str(REPO))
        from tests.hub.rabbit import RabbitCluster

        cluster = RabbitCluster(root / "rabbit").start()
        try:
            yield cluster.nodes[0].port, cluster.nodes[1].port
        finally:
            cluster.stop()


def start_fleet(port: int, devices: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "pinpanel", "fleet-sim", "--devices",
                                 str(devices), "--broker", f"127.0.0.1:{port}", "--pins", "1"],
                                stdout=out, stderr=subprocess.STDOUT)


def hub_config(port: int) -> Config:
    return Config(mqtt=MqttConfig(host="127.0.0.1", port=port, reconnect_max_s=2),
                  hub=HubConfig(enabled=True, command_timeout_ms=30_000),
                  mdns=MdnsConfig(enabled=False))


async def latency(port: int, devices: int, commands: int) -> dict[str, Any]:
    from pinpanel.hub.core import Hub

    hub = Hub(hub_config(port))
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        deadline = time.monotonic() + 600
        # Polling a count the hub keeps: a benchmark's wait, with no event of its own.
        while time.monotonic() < deadline and sum(  # noqa: ASYNC110
                d.online and d.described for d in hub.fleet.devices.values()) < devices:
            await asyncio.sleep(0.5)
        ready = sum(d.online for d in hub.fleet.devices.values())
        times: list[float] = []
        lost = 0
        for _ in range(commands):
            steps, word, timeout = hub.plan({"action": "toggle", "targets": [
                {"device": f"sim-{random.randint(1, devices):04d}", "pin": "gpio18"}]})
            (outcome,) = await hub.execute(steps, word, timeout)
            if outcome.status == "confirmed" and outcome.ms is not None:
                times.append(outcome.ms)
            else:
                lost += 1
        start = time.perf_counter()
        steps, word, timeout = hub.plan({"action": "off", "group": "all"})
        table = await hub.execute(steps, word, timeout)
        table_ms = (time.perf_counter() - start) * 1000
        return {"devices": devices, "online": ready, "commands": commands,
                "p50_ms": round(percentile(times, 0.5), 1),
                "p99_ms": round(percentile(times, 0.99), 1), "lost": lost,
                "fleet_command_rows": len(table),
                "fleet_command_confirmed": sum(o.status == "confirmed" for o in table),
                "fleet_table_ms": round(table_ms)}
    finally:
        stop.set()
        await task


def proc_cost(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, RSS in KiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmRSS:"))
    return cpu, rss


async def changer(port: int, devices: int, period_s: float, stop: asyncio.Event) -> None:
    """Every Pi toggles its pin once per ``period_s`` (commands spread over the period)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        while not stop.is_set():
            for n in range(1, devices + 1):
                await client.publish(f"pinpanel/sim-{n:04d}/gpio18/set", "TOGGLE", qos=0)
                await asyncio.sleep(period_s / devices)
                if stop.is_set():
                    return


async def cost(port: int, devices: int, window_s: float, root: Path) -> dict[str, Any]:
    config = root / "hub.toml"
    config.write_text(f'[gpio]\nbackend = "simulated"\n[mdns]\nenabled = false\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    web = free_port()
    with (root / "hub.log").open("wb") as out:
        # Started once and never waited on here: a blocking call only in name.
        proc = subprocess.Popen([sys.executable, "-m", "pinpanel", "hub",  # noqa: ASYNC220
                                 "--no-auth",
                                 "--host", "127.0.0.1", "--port", str(web), "--config",
                                 str(config), "--data-dir", str(root / "hubdata")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}") as http:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    seen = (await http.get("/api/v1/hub/devices")).json()["devices"]
                    if sum(d["online"] for d in seen) >= devices:
                        break
                await asyncio.sleep(1)
        result: dict[str, Any] = {"devices": devices, "window_s": window_s}
        for label in ("idle", "changing_every_10s"):
            stop = asyncio.Event()
            driver = asyncio.create_task(changer(port, devices, 10.0, stop)) \
                if label != "idle" else None
            await asyncio.sleep(2)
            cpu0, _ = proc_cost(proc.pid)
            await asyncio.sleep(window_s)
            cpu1, rss = proc_cost(proc.pid)
            stop.set()
            if driver is not None:
                await driver
            result[label] = {"cpu_percent": round(100 * (cpu1 - cpu0) / window_s, 1),
                             "rss_mib": round(rss / 1024, 1)}
        return result
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hub_latency")
    parser.add_argument("--layout", choices=("direct", "bridge", "cluster"), default="direct")
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--cost", action="store_true", help="measure the hub process instead")
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    for devices in args.devices:
        with tempfile.TemporaryDirectory(prefix="pinpanel-hub-bench-") as tmp, \
                layout(args.layout, Path(tmp)) as (pis, hub):
            fleet = start_fleet(pis, devices, Path(tmp) / "fleet.log")
            try:
                if args.cost:
                    report = asyncio.run(cost(hub, devices, args.window, Path(tmp)))
                else:
                    report = asyncio.run(latency(hub, devices, args.commands))
            finally:
                fleet.kill()
                fleet.wait()
            print(json.dumps({"layout": args.layout, **report}), flush=True)


if __name__ == "__main__":
    main()
