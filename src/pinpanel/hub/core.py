"""The hub: the fleet's picture, its live stream, and commands confirmed per Pi.

:class:`Hub` owns the :class:`~pinpanel.hub.fleet.Fleet` and the broker
:class:`~pinpanel.hub.link.Link`, and fans the fleet's changes out to every open event
stream, coalesced: a flusher wakes at most every :data:`FLUSH_S` and sends each changed
device once, encoded once for all streams. A stream whose client stops reading is dropped
(its queue is bounded) rather than letting the hub's memory grow; EventSource reconnects
and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pinpanel.config import Config
from pinpanel.hub.fleet import Device, Fleet
from pinpanel.hub.link import Link, Outcome

log = logging.getLogger("pinpanel.hub")

#: How often changed devices go out to the streams, at most.
FLUSH_S = 0.25
#: Frames a stream may fall behind before it is dropped.
STREAM_QUEUE = 2048
ACTIONS = {"on": "ON", "off": "OFF", "toggle": "TOGGLE"}


def frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class CommandError(ValueError):
    """A fleet command that cannot be planned (the API answers 422 with this text)."""


@dataclass(frozen=True)
class Step:
    """One command to one Pi: a pin id, or ``group/<id>``."""

    device: Device
    target: str


class Hub:
    """``await hub.run(stop)`` beside the web server; the routes read and command it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.fleet = Fleet(config.hub.bases)
        self.link = Link(config, self.fleet, on_change=self._changed)
        self.closing = asyncio.Event()
        self._streams: set[asyncio.Queue[bytes | None]] = set()
        self._wake = asyncio.Event()
        self._told_connected = False

    def _changed(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        from pinpanel.hub import lan

        flusher = asyncio.create_task(self._flush_loop())
        browser = lan.browser(self.config, self.fleet, self._changed)
        browsing = asyncio.create_task(browser(stop)) if browser else None
        try:
            await self.link.run(stop)
            if browsing is not None:
                await browsing
        finally:
            if browsing is not None:
                browsing.cancel()
            self.closing.set()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            for queue in list(self._streams):
                self._close(queue)

    # -- the stream --------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            devices = self.fleet.take_dirty()
            frames = [frame("device", d.as_json()) for d in devices]
            connected = self.link.connected.is_set()
            if connected != self._told_connected:  # the page says when the broker is away
                self._told_connected = connected
                frames.append(frame("hub", {"connected": connected}))
            if frames and self._streams:
                self.broadcast(b"".join(frames))
            await asyncio.sleep(FLUSH_S)  # coalesce: the next batch waits a little

    def broadcast(self, data: bytes) -> None:
        for queue in list(self._streams):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                log.warning("hub: a stream fell %d frames behind; dropped", STREAM_QUEUE)
                self._close(queue)

    def _close(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._streams.discard(queue)
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
        if queue.full():  # make room for the end marker
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(None)

    def subscribe(self) -> tuple[bytes, asyncio.Queue[bytes | None]]:
        """A snapshot frame and the queue of what follows (``None``: the stream ends)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(STREAM_QUEUE)
        self._streams.add(queue)
        return frame("snapshot", self.snapshot()), queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._streams.discard(queue)

    def snapshot(self) -> dict[str, Any]:
        return {"connected": self.link.connected.is_set(), "devices": self.fleet.snapshot()}

    # -- commands ----------------------------------------------------------------------------

    def plan(self, body: Any) -> tuple[list[Step], str, float]:
        """Turn a command request into steps; :class:`CommandError` says what is wrong."""
        if not isinstance(body, dict):
            raise CommandError("the body must be a JSON object")
        unknown = set(body) - {"action", "group", "targets", "devices", "timeout_ms"}
        if unknown:
            raise CommandError(f"unknown field(s): {', '.join(sorted(unknown))}")
        action = body.get("action")
        if action not in ACTIONS:
            raise CommandError("action must be on, off or toggle")
        timeout_ms = body.get("timeout_ms", self.config.hub.command_timeout_ms)
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or not (
                100 <= timeout_ms <= 60_000):
            raise CommandError("timeout_ms must be an integer from 100 to 60000")
        group, targets = body.get("group"), body.get("targets")
        if (group is None) == (targets is None):
            raise CommandError("give exactly one of group (a group id) or targets "
                               "(a list of {device, pin})")
        steps: list[Step] = []
        if group is not None:
            steps = self._group_steps(group, body.get("devices"))
        else:
            steps = self._target_steps(targets)
        return steps, ACTIONS[action], timeout_ms / 1000

    def _group_steps(self, group: Any, devices: Any) -> list[Step]:
        if not isinstance(group, str) or not group or "/" in group or "+" in group \
                or "#" in group:
            raise CommandError("group must be a group id")
        only: set[str] | None = None
        if devices is not None:
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise CommandError("devices must be a list of device ids")
            only = set(devices)
            missing = sorted(only - {d.device_id for d in self.fleet.devices.values()})
            if missing:
                raise CommandError(f"unknown device(s): {', '.join(missing[:10])}")
        steps = [Step(d, f"group/{group}") for d in sorted(self.fleet.devices.values(),
                                                           key=lambda d: d.device_id)
                 if d.controllable and group in d.groups
                 and (only is None or d.device_id in only)]
        if not steps:
            raise CommandError(f"no Pi the hub knows has a group {group!r}")
        return steps

    def _target_steps(self, targets: Any) -> list[Step]:
        if not isinstance(targets, list) or not targets or len(targets) > 10_000:
            raise CommandError("targets must be a list of 1 to 10000 {device, pin}")
        steps: list[Step] = []
        for index, item in enumerate(targets):
            if not (isinstance(item, dict) and isinstance(item.get("device"), str)
                    and isinstance(item.get("pin"), str) and set(item) == {"device", "pin"}):
                raise CommandError(f"targets[{index}] must be {{device, pin}}")
            device = self.fleet.by_id(item["device"])
            if device is None or not device.controllable:
                raise CommandError(f"targets[{index}]: unknown device {item['device']!r}")
            pin = item["pin"]
            if not pin or "/" in pin or "+" in pin or "#" in pin:
                raise CommandError(f"targets[{index}]: {pin!r} is not a pin id")
            steps.append(Step(device, pin))
        return steps

    async def execute(self, steps: list[Step], word: str, timeout_s: float) -> list[Outcome]:
        """Every step at once; each Pi's answer (or silence) reported on its own row."""
        outcomes = await asyncio.gather(*(
            self.link.command(s.device.base, s.device.device_id, s.target, {"state": word},
                              timeout_s) for s in steps))
        for step, outcome in zip(steps, outcomes, strict=True):
            for pin in outcome.pins:
                if isinstance(pin.get("id"), str) and self.fleet.merge_pin(step.device,
                                                                           pin["id"], pin):
                    self._wake.set()
        return list(outcomes)
