"""A fleet of simulated Pis on one broker: N full pinpanel cores in one process.

Each device is a full pinpanel core: its own :class:`~pinpanel.board.Board` over its own
simulated pins, its own durable store (in a temporary directory) and its own MQTT connection,
with device ids ``sim-0001``, ``sim-0002``... (topics under ``pinpanel/sim-0001/``). Only the
web server is left out, so a hundred devices fit on a laptop. ``pinpanel fleet-sim``
(:mod:`pinpanel.cli.fleet`) runs one; the benchmark's latency measurement
(``bench/mqtt_latency.py``) drives one from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path

from pinpanel.config import BCM_PINS, Config, GpioConfig, MqttConfig, PinConfig, ServerConfig

log = logging.getLogger("pinpanel.fleet")

#: Pins each simulated device gets by default (the tutorial's three outputs).
DEFAULT_PINS = 3
#: BCM numbers handed out to simulated devices, tutorial pins first.
PIN_ORDER = (18, 23, 24, *(n for n in BCM_PINS if n not in (18, 23, 24)))


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, port 1883) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 1883
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def device_config(index: int, broker: tuple[str, int], data_dir: Path, *, pins: int,
                  prefix: str = "sim", discovery: bool = False, qos: int = 1) -> Config:
    """Config of simulated device ``index`` (1-based): outputs on the first ``pins`` BCMs."""
    device_id = f"{prefix}-{index:04d}"
    pin_configs = tuple(PinConfig(pin=bcm, id=f"gpio{bcm}", name=f"GPIO {bcm}", initial="off")
                        for bcm in PIN_ORDER[:pins])
    return Config(
        server=ServerConfig(data_dir=str(data_dir / device_id)),
        gpio=GpioConfig(backend="simulated"),
        mqtt=MqttConfig(enabled=True, host=broker[0], port=broker[1], device_id=device_id,
                        discovery=discovery, qos=qos, reconnect_max_s=5),
        pins=pin_configs, source=f"fleet-sim {device_id}",
    )


async def run_fleet(broker: str, devices: int, stop: asyncio.Event, *,
                    pins: int = DEFAULT_PINS, prefix: str = "sim", discovery: bool = False,
                    qos: int = 1, data_dir: Path | None = None) -> None:
    """Run ``devices`` simulated devices against ``broker`` until ``stop`` is set."""
    from pinpanel import mqtt
    from pinpanel.mqtt.bridge import MqttBridge
    from pinpanel.runtime import opened

    address = parse_broker(broker)
    with contextlib.ExitStack() as files:
        root = data_dir or Path(files.enter_context(
            tempfile.TemporaryDirectory(prefix="pinpanel-fleet-")))
        async with contextlib.AsyncExitStack() as stack:
            bridges: list[MqttBridge] = []
            for index in range(1, devices + 1):
                config = device_config(index, address, root, pins=pins, prefix=prefix,
                                       discovery=discovery, qos=qos)
                runtime = await stack.enter_async_context(opened(config))
                bridges.append(mqtt.make_bridge(config, runtime.board,
                                                listen=runtime.hub.add_listener,
                                                memory=runtime.store,
                                                hardware=runtime.hardware.info))
            tasks = [asyncio.create_task(bridge.run(stop)) for bridge in bridges]
            try:
                for bridge in bridges:
                    stopped = asyncio.ensure_future(stop.wait())
                    connected = asyncio.ensure_future(bridge.connected.wait())
                    await asyncio.wait({stopped, connected}, return_when=asyncio.FIRST_COMPLETED)
                    stopped.cancel()
                    connected.cancel()
                if not stop.is_set():
                    print(f"fleet-sim: {devices} devices online on {broker} "
                          f"(pinpanel/{prefix}-0001 ...)", flush=True)
                await stop.wait()
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
