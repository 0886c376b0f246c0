"""A fleet of simulated Pis on one broker, and the command-to-state latency through it.

``pinpanel fleet-sim --devices N --broker HOST:PORT`` runs N devices in one process, each a
full pinpanel core: its own :class:`~pinpanel.board.Board` over its own simulated pins, its
own durable store (in a temporary directory) and its own MQTT connection, with device ids
``sim-0001``, ``sim-0002``... (topics under ``pinpanel/sim-0001/``). Only the web server is
left out, so a hundred devices fit on a laptop.

:func:`measure_latency` starts such a fleet as a child process and measures, from a separate
MQTT client, the time from publishing ``ON``/``OFF`` on a pin's ``set`` topic to receiving
the committed state on its ``state`` topic: broker in, board core, durable commit, broker
out. :class:`LocalBroker` runs Debian's ``mosquitto`` on a free local port for tests and
benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinpanel.config import BCM_PINS, Config, GpioConfig, MqttConfig, PinConfig, ServerConfig

log = logging.getLogger("pinpanel.fleet")

MOSQUITTO = "/usr/sbin/mosquitto"
#: Pins each simulated device gets by default (the tutorial's three outputs).
DEFAULT_PINS = 3
#: BCM numbers handed out to simulated devices, tutorial pins first.
PIN_ORDER = (18, 23, 24, *(n for n in BCM_PINS if n not in (18, 23, 24)))


# -- a local broker ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, port 1883) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 1883
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@dataclass
class LocalBroker:
    """``mosquitto`` on 127.0.0.1 only, with a throw-away config in ``directory``.

    ``users`` (name -> password) turns anonymous access off and writes a password file with
    ``mosquitto_passwd``; ``tls`` = (certfile, keyfile) makes the listener TLS-only. The
    process is stopped by its own PID, never by name.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    tls: tuple[Path, Path] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        # set_tcp_nodelay: mosquitto leaves Nagle on by default, adding ~40 ms per message
        # that follows another small one (README: "MQTT and Home Assistant").
        # user: run as root (CI containers), mosquitto would switch to the "mosquitto" user,
        # which cannot read a private temporary directory; as anyone else it is ignored.
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "set_tcp_nodelay true",
                 f"allow_anonymous {'false' if self.users else 'true'}",
                 f"user {getpass.getuser()}"]
        if self.users:
            password_file = self.directory / "passwords"
            password_file.write_text("")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), name, password],
                               check=True, capture_output=True)
            lines.append(f"password_file {password_file}")
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        path = self.directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10) -> LocalBroker:
        """Start (or restart, on the same port) and wait until it accepts connections."""
        config = self._write_config()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word, as a crash or power cut would."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def temporary_broker() -> Iterator[LocalBroker]:
    """A fresh local mosquitto in a temporary directory, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="pinpanel-broker-") as tmp, \
            LocalBroker(Path(tmp)) as broker:
        yield broker


# -- the simulated fleet -------------------------------------------------------------------


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


# -- measuring -------------------------------------------------------------------------------


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


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


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
