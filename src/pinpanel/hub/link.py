"""The hub's one connection to the broker: the fleet's messages in, commands out.

On every (re)connect the hub subscribes to the fleet's topics and publishes one fleet-wide
refresh request, so its picture never depends on retained messages alone (a broker cluster
may not replicate them between nodes; a bridge that comes back may not resend them).

A command is published on the Pi's ``set`` topic with an ``id`` of the hub's own; the Pi
answers on ``<base>/result``. Each command waits for its answer (or the timeout) on a
future keyed by that id, so one request can command a thousand Pis and report each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from pinpanel import fleetwire
from pinpanel.config import Config
from pinpanel.hub.fleet import Fleet

log = logging.getLogger("pinpanel.hub")

FIRST_BACKOFF_S = 0.5
CALL_TIMEOUT_S = 10.0
#: As the Pi's bridge: small messages go out at once, not after the broker's delayed ACK.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
#: Commands waiting for an answer at once; more are refused (the hub is not a queue).
MAX_PENDING = 20_000


@dataclass
class Outcome:
    """How one command to one Pi went, as the API and the page report it."""

    device: str
    target: str
    status: str = "timeout"  # confirmed | refused | timeout | not_sent
    ms: float | None = None
    seq: int | None = None
    reason: str | None = None
    detail: str | None = None
    pins: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"device": self.device, "target": self.target, "status": self.status,
                "ms": None if self.ms is None else round(self.ms, 1), "seq": self.seq,
                "reason": self.reason, "detail": self.detail, "pins": self.pins}


class Link:
    """Subscribe, refresh, command: ``await link.run(stop)`` until ``stop`` is set."""

    def __init__(self, config: Config, fleet: Fleet,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.mqtt = config.mqtt
        self.fleet = fleet
        self.connected = asyncio.Event()
        self.connections = 0
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, tuple[float, asyncio.Future[dict[str, Any]]]] = {}
        self._prefix = f"h{secrets.token_hex(3)}-"
        self._counter = itertools.count(1)
        self._on_change = on_change
        self.client_id = f"pinpanel-hub-{secrets.token_hex(4)}"
        self._probing: asyncio.Future[None] | None = None
        self._probe_again = False

    def _make_client(self) -> aiomqtt.Client:
        s = self.mqtt
        tls = None
        if s.tls:
            tls = aiomqtt.TLSParameters(ca_certs=s.ca_file or None, certfile=s.certfile or None,
                                        keyfile=s.keyfile or None)
        client = aiomqtt.Client(s.host, s.port, username=s.username or None,
                              password=s.password or None, identifier=self.client_id,
                              keepalive=s.keepalive, clean_session=True, tls_params=tls,
                              timeout=CALL_TIMEOUT_S, socket_options=NO_DELAY,
                              logger=logging.getLogger("pinpanel.hub.client"))
        # A fleet-wide command is one publish per Pi at once: hundreds in flight are the
        # design, not a backlog worth a warning per publish.
        client.pending_calls_threshold = MAX_PENDING
        return client

    async def run(self, stop: asyncio.Event) -> None:
        delay = FIRST_BACKOFF_S
        where = f"{self.mqtt.host}:{self.mqtt.port}"
        while not stop.is_set():
            try:
                async with self._make_client() as client:
                    delay = FIRST_BACKOFF_S
                    await self._session(client, stop)
            except aiomqtt.MqttError as exc:
                log.warning("hub: broker %s unavailable (%s); retrying", where, exc)
            except Exception:
                log.exception("hub: connection error; reconnecting")
            finally:
                self._client = None
                self.connected.clear()
                self._on_change()
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(delay / 2, delay))
            delay = min(delay * 2, float(self.mqtt.reconnect_max_s))
        for _, future in self._pending.values():
            future.cancel()
        log.info("hub: stopped")

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        for topic_filter in (*self.fleet.filters, self.config.hub.bridge_topics):
            await client.subscribe(topic_filter, qos=self.mqtt.qos)
        self._client = client
        self.connections += 1
        self.connected.set()
        self._on_change()
        log.info("hub: connected to %s:%d; listening on %s", self.mqtt.host, self.mqtt.port,
                 self.fleet.bases)
        await self.refresh()
        receiver = asyncio.create_task(self._receive(client))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({receiver, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, stopper):
                task.cancel()
            await asyncio.gather(receiver, stopper, return_exceptions=True)
        if receiver in done and not receiver.cancelled() and receiver.exception():
            raise receiver.exception()  # type: ignore[misc]
        if receiver in done:
            raise aiomqtt.MqttError("the broker closed the message stream")

    async def refresh(self, base: str | None = None) -> None:
        """Ask the whole fleet (or one Pi) to publish everything again."""
        client = self._client
        if client is not None:
            topic = fleetwire.FLEET_REFRESH if base is None else fleetwire.refresh_topic(base)
            await client.publish(topic, b"", qos=self.mqtt.qos)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            topic = message.topic.value
            if message.topic.matches(self.config.hub.bridge_topics):
                log.info("hub: bridge %s says %r; asking the fleet who is there", topic,
                         data[:8])
                self._probe()
            elif topic.endswith("/" + fleetwire.RESULT):
                self._answer(data)
            elif self.fleet.apply(topic, data):
                self._on_change()

    def _probe(self) -> None:
        """A fleet refresh; Pis that do not answer within ``probe_ms`` are unreachable.

        Needed across bridges: a site whose bridge is down cannot deliver its Pis' last
        wills to the central broker, so only silence tells the hub they are out of reach.
        """
        self._probe_again = True
        if self._probing is None or self._probing.done():
            self._probing = asyncio.ensure_future(self._run_probe())

    async def _run_probe(self) -> None:
        while self._probe_again:  # a bridge that changed during a probe gets its own
            self._probe_again = False
            asked = self.fleet.now()
            with contextlib.suppress(aiomqtt.MqttError):
                await self.refresh()
            await asyncio.sleep(self.config.hub.probe_ms / 1000)
            gone = self.fleet.mark_unreachable(asked)
            if gone:
                log.warning("hub: %d Pi(s) did not answer a refresh: unreachable", len(gone))
                self._on_change()

    def _answer(self, data: bytes) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        held = self._pending.get(str(body.get("id")))
        if held is not None and not held[1].done():
            held[1].set_result(body)

    async def command(self, base: str, device_id: str, target: str, body: dict[str, Any],
                      timeout_s: float) -> Outcome:
        """Send one command to one Pi and wait for its answer, at most ``timeout_s``."""
        outcome = Outcome(device=device_id, target=target)
        client = self._client
        if client is None or len(self._pending) >= MAX_PENDING:
            outcome.status, outcome.reason = "not_sent", (
                "hub not connected to the broker" if client is None else "hub busy")
            return outcome
        ident = f"{self._prefix}{next(self._counter)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        self._pending[ident] = (start, future)
        topic = (fleetwire.group_command_topic(base, target[len("group/"):])
                 if target.startswith("group/") else fleetwire.command_topic(base, target))
        try:
            await client.publish(topic, json.dumps({"id": ident, **body}), qos=self.mqtt.qos)
            answer = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            outcome.status = "timeout"
            outcome.detail = f"no answer after {round(timeout_s * 1000)} ms"
            return outcome
        except aiomqtt.MqttError as exc:
            outcome.status, outcome.reason, outcome.detail = "not_sent", "broker", str(exc)
            return outcome
        finally:
            self._pending.pop(ident, None)
        outcome.ms = (time.perf_counter() - start) * 1000
        if answer.get("result") == "ok":
            outcome.status = "confirmed"
            outcome.seq = answer.get("seq") if isinstance(answer.get("seq"), int) else None
            outcome.pins = [p for p in answer.get("pins") or () if isinstance(p, dict)]
        else:
            outcome.status = "refused"
            outcome.reason = str(answer.get("reason") or "error")
            outcome.detail = str(answer.get("detail") or
                                 fleetwire.REFUSALS.get(outcome.reason, ""))
        return outcome
