"""``python -m bench.mqtt_latency``: command-to-state latency through a broker, N = 1, 10, 100.

A fresh local mosquitto (Debian's, 127.0.0.1 only) per run; for each fleet size
:func:`measure_latency` starts ``pinpanel fleet-sim`` as a child process and measures, from a
separate MQTT client, the time from publishing ``ON``/``OFF`` on a pin's ``set`` topic to
receiving the committed state on its ``state`` topic: broker in, board core, durable commit,
broker out, one command at a time. Prints one JSON object per fleet size, then a Markdown
table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.stats import percentile
from pinpanel.fleet import DEFAULT_PINS, PIN_ORDER, parse_broker
from pinpanel.local_broker import temporary_broker


@dataclass(frozen=True)
class LatencyReport:
    """Command-to-state latency through the broker, in milliseconds."""

    devices: int
    commands: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    lost: int

    def as_json(self) -> dict[str, Any]:
        return {"devices": self.devices, "commands": self.commands, "p50_ms": self.p50_ms,
                "p99_ms": self.p99_ms, "mean_ms": self.mean_ms, "max_ms": self.max_ms,
                "lost": self.lost}


async def measure_latency_async(broker: str, devices: int, commands: int = 200, *,
                                pins: int = DEFAULT_PINS, qos: int = 1,
                                timeout_s: float = 120.0,
                                command_timeout_s: float = 10.0) -> LatencyReport:
    """See :func:`measure_latency`."""
    import aiomqtt

    from pinpanel.mqtt.bridge import NO_DELAY

    host, port = parse_broker(broker)
    prefix = f"lat{secrets.token_hex(3)}"
    ids = [f"{prefix}-{i:04d}" for i in range(1, devices + 1)]
    pin_ids = [f"gpio{bcm}" for bcm in PIN_ORDER[:pins]]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pinpanel", "fleet-sim", "--devices", str(devices),
        "--broker", broker, "--pins", str(pins), "--prefix", prefix, "--qos", str(qos),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = asyncio.create_task(_collect(proc))
    try:
        async with aiomqtt.Client(host, port, identifier=f"pinpanel-bench-{prefix}",
                                  timeout=command_timeout_s, socket_options=NO_DELAY) as client:
            return await _measure(client, proc, output, ids, pin_ids, commands, qos,
                                  timeout_s, command_timeout_s)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await output


async def _collect(proc: asyncio.subprocess.Process) -> str:
    """The child's output (for an error message), read without blocking the loop."""
    assert proc.stdout is not None
    data = await proc.stdout.read()
    return data[-4000:].decode(errors="replace")


async def _measure(client: Any, proc: asyncio.subprocess.Process, output: asyncio.Task[str],
                   ids: list[str], pin_ids: list[str], commands: int, qos: int, timeout_s: float,
                   command_timeout_s: float) -> LatencyReport:
    states: dict[str, bool] = {}
    online: set[str] = set()
    waiting: dict[str, tuple[bool, asyncio.Future[float]]] = {}
    ready = asyncio.Event()
    wanted = len(ids) * len(pin_ids)

    async def read() -> None:
        async for message in client.messages:
            now = time.perf_counter()
            topic = message.topic.value
            payload = bytes(message.payload) if isinstance(message.payload, bytes) else b""
            if topic.endswith("/status"):
                device = topic.split("/")[1]
                (online.add if payload == b"online" else online.discard)(device)
            elif topic.endswith("/state") and payload in (b"ON", b"OFF"):
                states[topic] = payload == b"ON"
                expect = waiting.get(topic)
                if expect is not None and expect[0] == states[topic] and not expect[1].done():
                    expect[1].set_result(now)
            if len(online) == len(ids) and len(states) >= wanted:
                ready.set()

    reader = asyncio.create_task(read())
    try:
        root = ids[0].rsplit("-", 1)[0]
        await client.subscribe("pinpanel/+/status", qos=1)
        await client.subscribe("pinpanel/+/+/state", qos=qos)
        deadline = time.monotonic() + timeout_s
        while not ready.is_set():
            if proc.returncode is not None:
                raise RuntimeError(f"fleet-sim exited with {proc.returncode}:\n{await output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(online)} of {len(ids)} {root} devices came online "
                                   f"within {timeout_s:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 0.2)
        samples: list[float] = []
        lost = 0
        for i in range(commands):
            device = ids[i % len(ids)]
            pin = pin_ids[(i // len(ids)) % len(pin_ids)]
            topic = f"pinpanel/{device}/{pin}/state"
            target = not states[topic]
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            waiting[topic] = (target, future)
            start = time.perf_counter()
            await client.publish(f"pinpanel/{device}/{pin}/set", b"ON" if target else b"OFF",
                                 qos=qos)
            try:
                arrived = await asyncio.wait_for(future, command_timeout_s)
                samples.append((arrived - start) * 1000)
            except TimeoutError:
                lost += 1
            finally:
                waiting.pop(topic, None)
        if not samples:
            raise RuntimeError("no command produced a state message")
        return LatencyReport(
            devices=len(ids), commands=commands, p50_ms=round(percentile(samples, 0.50), 3),
            p99_ms=round(percentile(samples, 0.99), 3),
            mean_ms=round(sum(samples) / len(samples), 3), max_ms=round(max(samples), 3),
            lost=lost)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


def measure_latency(broker: str, devices: int, commands: int = 200, *,
                    pins: int = DEFAULT_PINS, qos: int = 1,
                    timeout_s: float = 120.0) -> LatencyReport:
    """Command-to-state latency through ``broker`` ("HOST:PORT") with a fleet of ``devices``.

    Starts ``pinpanel fleet-sim`` as a child process (each device a full board with a durable
    store), waits until every device is online with its retained states, then sends
    ``commands`` commands one at a time, round-robin over devices and pins, each flipping a
    pin, and times publish -> committed ``state`` message. Returns p50/p99 (ms) and how many
    were lost (no state within 10 s). Blocking; call it from synchronous code.
    """
    return asyncio.run(measure_latency_async(broker, devices, commands, pins=pins, qos=qos,
                                             timeout_s=timeout_s))


def run(sizes: list[int], commands: int, broker: str | None = None) -> list[LatencyReport]:
    """Measure each fleet size, on ``broker`` or on a temporary local mosquitto."""
    if broker is not None:
        return [measure_latency(broker, n, commands) for n in sizes]
    with temporary_broker() as local:
        return [measure_latency(local.address, n, commands) for n in sizes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mqtt_latency", description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--broker", help="HOST:PORT of an existing broker (default: a fresh "
                                         "local mosquitto)")
    args = parser.parse_args(argv)
    reports = run(args.devices, args.commands, args.broker)
    for report in reports:
        print(json.dumps(report.as_json()))
    print("\n| devices | commands | p50 ms | p99 ms | max ms | lost |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in reports:
        print(f"| {r.devices} | {r.commands} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
              f"{r.max_ms:.2f} | {r.lost} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
