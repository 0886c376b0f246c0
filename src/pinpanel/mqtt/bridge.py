"""The MQTT bridge: the board's committed changes out, commands in, through one broker.

Out: a synchronous hub listener records the newest committed view of each pin and wakes
the publisher. It never blocks and never waits on the broker, so the HTTP side cannot be
slowed by MQTT. The "queue" is one slot per pin: while the broker is away only the latest
state of each pin matters, so it is bounded by the pin count however long the outage, and
on every (re)connect availability, discovery and every pin's state are published again.
Each change goes out as ``<base>/<pin>/attributes`` (the pin as the HTTP API shows it, with
its ``state`` and ``seq``: the one message Home Assistant reads) and then
``<base>/<pin>/state`` (``ON``/``OFF``, for scripts), both retained; a pwm pin's level and a
servo's angle follow on ``<base>/<pin>/level`` / ``/angle``.

In: commands on ``<base>/+/set`` (and a pin's ``level/set`` / ``angle/set``, a group's or a
scene's) are handed to :class:`~pinpanel.mqtt.commands.Commands`, which runs each through
the board as its own task, logs and drops what it must refuse, and answers a JSON command
with an ``id`` on ``<base>/result``; the message loop here never waits for a commit.

Fleet: ``<base>/device`` (retained) says who this Pi is; a message on ``<base>/refresh`` or
on the fleet-wide ``pinpanel/fleet/refresh`` has it publish device, states and ``online``
again (coalesced: a burst of requests costs one republish), for hubs that cannot rely on
retained messages (a broker cluster, a hub started late).

Faults: a lost or refused connection is retried with exponential backoff (with jitter, so a
fleet does not reconnect in lock-step) up to ``reconnect_max_s``. The broker publishes the
retained last will ``offline`` on an unclean loss; a clean stop publishes it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable

import aiomqtt

from pinpanel import fleetwire
from pinpanel.board import Board
from pinpanel.changes import Change, PinView
from pinpanel.config import Config
from pinpanel.hardware import BackendInfo
from pinpanel.mqtt import device, discovery
from pinpanel.mqtt import sensors as mqtt_sensors
from pinpanel.mqtt.client import NO_DELAY, NoiseLimiter, _Client
from pinpanel.mqtt.commands import Commands
from pinpanel.mqtt.topics import OFF, OFFLINE, ON, ONLINE, VALUE_OF_MODE, Topics
from pinpanel.sensors.model import Sample, quantities
from pinpanel.sensors.sampler import Sampler
from pinpanel.telemetry import Telemetry

log = logging.getLogger("pinpanel.mqtt")

#: First wait after a failed connection; doubles up to ``reconnect_max_s``.
FIRST_BACKOFF_S = 0.5
#: Home Assistant asks for a random delay before re-sending discovery after its birth
#: message, so a fleet does not answer all at once.
HA_ONLINE_JITTER_S = 1.0
#: Broker calls (connect, publish acknowledgement) that take longer count as a lost broker.
CALL_TIMEOUT_S = 10.0
#: How long a clean stop waits for outstanding states and commands.
STOP_GRACE_S = 2.0


def model_of(info: BackendInfo) -> str:
    """The device model Home Assistant shows: the Pi's board name, or what stands in."""
    if info.simulated:
        return "simulated board"
    return info.board or f"Raspberry Pi ({info.name})"


class MqttBridge:
    """One device's connection to the broker. ``await bridge.run(stop)`` until ``stop``."""

    def __init__(self, config: Config, board: Board, *,
                 listen: Callable[[Callable[[Change], None]], None], memory: discovery.Memory,
                 model: str, topics: Topics | None = None,
                 telemetry: Telemetry | None = None,
                 sensors: Sampler | None = None) -> None:
        """``listen`` registers a listener for committed changes (the hub's
        ``add_listener``), ``memory`` keeps what discovery published (the store), ``model``
        names the hardware and ``telemetry`` takes the ``mqtt_connected`` gauge; all handed
        in by the runtime, which owns them.
        """
        self.config = config
        self.settings = config.mqtt
        self.board = board
        self.topics = topics or Topics.of(config.mqtt)
        self.client_id = config.mqtt.client_id or f"pinpanel-{self.topics.device_id}"
        self.connected = asyncio.Event()
        self.connections = 0
        self._ids = {p.pin: p.id for p in config.pins}
        # Everything the board has committed so far; the board has finished start() here.
        self._latest: dict[int, PinView] = {v.pin: v for v in board.views()}
        self._dirty: dict[int, None] = {}
        self._wake = asyncio.Event()
        self._discovery_due = False
        self._refresh_due = False
        self._reconfigure_due = False
        self._device = device.device_payload(config, self.topics)
        self._commands = Commands(board, self.topics, qos=config.mqtt.qos,
                                  noise=NoiseLimiter(log))
        self._memory = memory
        self._telemetry = telemetry or Telemetry()  # none given: counted for nobody
        self._model = model
        listen(self._on_change)
        # Sensors: the newest published sample of each, sent as <base>/<sensor>/state.
        self._sensors = sensors
        self._names = {s.id: [q.name for q in quantities(s)] for s in config.sensors}
        self._samples: dict[str, Sample] = {}
        self._samples_dirty: dict[str, None] = {}
        if sensors is not None:
            self._samples = {i: st.latest for i, st in sensors.states.items()
                             if st.latest is not None}
            sensors.add_listener(self._on_reading)

    def reconfigure(self, config: Config) -> None:
        """Follow a config the board has applied live (the page, the API, SIGHUP, reload).

        The runtime calls this after :meth:`Board.reconfigure`; the next round of the
        publish loop announces again, as on a connect: entities of pins that left are
        removed (empty retained payloads), the others and ``<base>/device`` republished.
        Only the pins' sections apply live; the broker settings stay as started.
        """
        self.config = config
        self._ids = {p.pin: p.id for p in config.pins}
        self._device = device.device_payload(config, self.topics)
        held = self._latest
        self._latest = {}
        for view in self.board.views():  # what the board holds after applying it
            old = held.get(view.pin)
            self._latest[view.pin] = old if old is not None and old.seq > view.seq and \
                old.id == view.id else view
        self._dirty = {bcm: None for bcm in self._dirty if bcm in self._latest}
        self._reconfigure_due = True
        self._wake.set()

    def _on_reading(self, sample: Sample) -> None:
        """Sampler listener: remember the newest sample; never blocks, never fails."""
        self._samples[sample.sensor] = sample
        self._samples_dirty[sample.sensor] = None
        self._wake.set()

    async def _publish_samples(self, client: aiomqtt.Client) -> None:
        batch = list(self._samples_dirty)
        self._samples_dirty.clear()
        try:
            await asyncio.gather(*(
                client.publish(mqtt_sensors.state_topic(self.topics, sid),
                               mqtt_sensors.state_payload(self._samples[sid], self._names[sid]),
                               qos=self.settings.qos, retain=True) for sid in batch))
        except BaseException:
            for sid in batch:
                self._samples_dirty.setdefault(sid)
            raise

    # -- out: committed changes --------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        """Hub listener: remember the newest committed view; never blocks, never fails."""
        view = change.pin
        held = self._latest.get(view.pin)
        if held is not None and held.seq > view.seq:
            return
        self._latest[view.pin] = view
        self._dirty[view.pin] = None
        self._wake.set()

    async def _publish_dirty(self, client: aiomqtt.Client) -> None:
        batch = list(self._dirty)
        self._dirty.clear()
        qos = self.settings.qos
        calls: list[Awaitable[None]] = []
        for bcm in batch:
            view = self._latest[bcm]
            # Attributes first: whoever sees the new state already has its seq.
            calls.append(client.publish(self.topics.attributes(view.id),
                                        _attributes(view), qos=qos, retain=True))
            calls.append(client.publish(self.topics.state(view.id), ON if view.state else OFF,
                                        qos=qos, retain=True))
            kind = VALUE_OF_MODE.get(view.mode)
            if kind is not None:  # a pwm level or a servo angle, for scripts, after state
                calls.append(client.publish(self.topics.value(view.id, kind),
                                            _value_text(view), qos=qos, retain=True))
        try:
            # All started in order (paho queues them in call order), acknowledged together.
            await asyncio.gather(*calls)
        except BaseException:
            for bcm in batch:  # not known to be out: send again on the next chance
                self._dirty.setdefault(bcm)
            raise

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._reconfigure_due:
                self._reconfigure_due = False
                await self._announce(client)
            if self._discovery_due:
                self._discovery_due = False
                await self._publish_discovery(client)
                await self._publish_online(client)
            if self._refresh_due:
                self._refresh_due = False
                await self._publish_everything(client)
            if self._dirty:
                await self._publish_dirty(client)
            if self._samples_dirty:
                await self._publish_samples(client)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        if self.settings.discovery:
            qos = self.settings.qos
            await asyncio.gather(*(
                client.publish(entity.topic, entity.encode(), qos=qos, retain=True)
                for entity in discovery.entities(self.config, self.topics, self._model)))

    async def _publish_online(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics.status, ONLINE, qos=self.settings.qos, retain=True)

    async def _publish_device(self, client: aiomqtt.Client) -> None:
        await client.publish(fleetwire.device_topic(self.topics.base), self._device,
                             qos=self.settings.qos, retain=True)

    async def _publish_everything(self, client: aiomqtt.Client) -> None:
        """A refresh: who this Pi is, every pin and sensor, then ``online`` last."""
        await self._publish_device(client)
        for bcm in self._latest:
            self._dirty.setdefault(bcm)
        await self._publish_dirty(client)
        for sensor_id in self._samples:
            self._samples_dirty.setdefault(sensor_id)
        await self._publish_samples(client)
        await self._publish_online(client)

    async def _announce(self, client: aiomqtt.Client) -> None:
        """On every connect: clean up what left the config, discovery, all states, online.

        ``online`` goes last, so whoever waits for it finds everything else already retained.
        """
        qos = self.settings.qos
        before = discovery.Published.from_text(self._memory.read_meta(discovery.RECORD_KEY))
        after = discovery.now_published(self.config, self.topics, self._model)
        plan = discovery.plan(
            before, after, device_topic=self.topics.device_discovery,
            components={p.id: discovery.platform_of(p) for p in self.config.pins})
        for topic in plan.clear_topics:  # entities whose pin left or changed its mode
            await client.publish(topic, b"", qos=qos, retain=True)
        if plan.device_topic:
            # Hand the entities of the old device-based message over (or remove them).
            handover = discovery.encode(discovery.MIGRATE) if plan.migrate else b""
            await client.publish(plan.device_topic, handover, qos=qos, retain=True)
        await self._publish_discovery(client)
        if plan.device_topic:
            if plan.migrate:  # the entities are the new messages' now: drop the old one
                await client.publish(plan.device_topic, b"", qos=qos, retain=True)
            log.info("mqtt: %s Home Assistant's device-based discovery of %s",
                     "migrated from" if plan.migrate else "removed",
                     ", ".join(sorted(before.components)) or "no pins")
        if plan.clear_topics:
            log.info("mqtt: removed %d entities from Home Assistant discovery",
                     len(plan.clear_topics))
        for pin_id in plan.stale_pins:  # retained state of a pin that no longer exists
            await client.publish(self.topics.state(pin_id), b"", qos=qos, retain=True)
            await client.publish(self.topics.attributes(pin_id), b"", qos=qos, retain=True)
            for kind in VALUE_OF_MODE.values():
                await client.publish(self.topics.value(pin_id, kind), b"", qos=qos,
                                     retain=True)
        if after != before:
            await self._memory.write_meta(discovery.RECORD_KEY, after.as_text())
        await self._publish_everything(client)

    # -- in: commands and Home Assistant's birth message ------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = bytes(payload) if isinstance(payload, bytes | bytearray) else (
                b"" if payload is None else str(payload).encode())
            topic = message.topic.value
            if topic == self.topics.ha_status:
                if data.strip().lower() == ONLINE.encode():
                    self._commands.spawn(self._home_assistant_online())
                continue
            if topic in self._refresh_topics:
                if not message.retain:  # a retained request would be answered forever
                    self._refresh_due = True
                    self._wake.set()
                continue
            self._commands.receive(client, topic, data, bool(message.retain))

    @property
    def _refresh_topics(self) -> tuple[str, str]:
        return fleetwire.refresh_topic(self.topics.base), fleetwire.FLEET_REFRESH

    async def _home_assistant_online(self) -> None:
        await asyncio.sleep(random.uniform(0, HA_ONLINE_JITTER_S))
        self._discovery_due = True
        self._wake.set()

    # -- the connection ----------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        tls = None
        if s.tls:
            tls = aiomqtt.TLSParameters(ca_certs=s.ca_file or None, certfile=s.certfile or None,
                                        keyfile=s.keyfile or None)
        return _Client(
            s.host, s.port, username=s.username or None, password=s.password or None,
            identifier=self.client_id, keepalive=s.keepalive, clean_session=True,
            will=aiomqtt.Will(self.topics.status, OFFLINE, qos=s.qos, retain=True),
            tls_params=tls, timeout=CALL_TIMEOUT_S, socket_options=NO_DELAY,
            logger=logging.getLogger("pinpanel.mqtt.client"),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect with backoff; return once ``stop`` is set."""
        s = self.settings
        where = f"{s.host}:{s.port}"
        delay = FIRST_BACKOFF_S
        failures = 0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    delay, failures = FIRST_BACKOFF_S, 0
                    await self._session(client, stop)
            except aiomqtt.MqttError as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.INFO
                log.log(level, "mqtt: broker %s unavailable (%s); retrying in up to %.1f s",
                        where, exc, delay)
            except Exception:
                failures += 1
                log.exception("mqtt: bridge error; reconnecting")
            finally:
                self.connected.clear()
                self._telemetry.set_gauge("mqtt_connected", 0)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(delay / 2, delay))
            delay = min(delay * 2, float(s.reconnect_max_s))
        await self._commands.finish(STOP_GRACE_S)
        log.info("mqtt: bridge stopped")

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        qos = self.settings.qos
        await client.subscribe(self.topics.command_filter, qos=qos)
        for scoped in (*self.topics.group_filters, *self.topics.value_filters,
                       *self._refresh_topics):
            await client.subscribe(scoped, qos=qos)
        if self.settings.discovery:
            await client.subscribe(self.topics.ha_status, qos=qos)
        await self._announce(client)
        self.connections += 1
        self.connected.set()
        self._telemetry.set_gauge("mqtt_connected", 1)
        log.info("mqtt: connected to %s:%d as %s; topics under %s/", self.settings.host,
                 self.settings.port, self.client_id, self.topics.base)
        receiver = asyncio.create_task(self._receive(client))
        publisher = asyncio.create_task(self._publish_loop(client))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({receiver, publisher, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, publisher, stopper):
                task.cancel()
            await asyncio.gather(receiver, publisher, stopper, return_exceptions=True)
        for task in (receiver, publisher):
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if receiver in done:
            raise aiomqtt.MqttError("the broker closed the message stream")
        # A clean stop: let commands in flight commit, send what they changed, say goodbye.
        await self._commands.finish(STOP_GRACE_S)
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await asyncio.wait_for(self._publish_dirty(client), STOP_GRACE_S)
        await client.publish(self.topics.status, OFFLINE, qos=qos, retain=True)


def _value_text(view: PinView) -> str:
    """``<base>/<pin>/level`` or ``/angle``: the number, or ``null`` for a detached servo."""
    value = view.level if view.mode == "pwm" else view.angle
    return "null" if value is None else repr(float(value))


def _attributes(view: PinView) -> bytes:
    return json.dumps(view.as_json(), separators=(",", ":")).encode()
