"""Commands in: what clients publish on the command topics, run through the board.

A command on ``<base>/+/set`` goes through :meth:`Board.command` / :meth:`Board.pulse`, a
level or angle on ``<base>/+/level/set`` / ``/angle/set`` through :meth:`Board.set_level` /
:meth:`Board.set_angle`, and a group's or scene's through :mod:`pinpanel.automation.groups`
(one commit, as the HTTP route), all with an ``mqtt`` actor, so interlocks, auto-off and the
audit log apply as they do to HTTP. Each runs as its own task (the message loop never waits
for an fsync), started in arrival order; the board takes the pin lock before its first
suspension point, so commands for one pin apply in the order they arrived.

Every failure takes one path (:meth:`Commands._guarded`): a refusal (bad payload, unknown
pin or name, wrong mode, a value out of range) is logged rate-limited, a store failure as a
warning, anything else with its traceback, and the error is returned, never raised: nothing
a client sends can stop the bridge. A JSON command with an ``id`` is answered on
``<base>/result`` (``ok`` with the commit's seq, or the refusal's reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

import aiomqtt

from pinpanel import fleetwire
from pinpanel.automation import groups
from pinpanel.board import Applied, Board
from pinpanel.changes import Actor, PinView
from pinpanel.errors import (
    MqttPayloadError,
    PinModeError,
    PinValueError,
    StoreError,
    UnknownNameError,
    UnknownPinError,
)
from pinpanel.mqtt import device
from pinpanel.mqtt.client import NoiseLimiter
from pinpanel.mqtt.payloads import Command, command_id, parse_command, parse_value
from pinpanel.mqtt.topics import Topics

log = logging.getLogger("pinpanel.mqtt")

ACTOR = Actor("mqtt", "mqtt", client=None)
#: Commands executing at once; more are dropped (logged) rather than queued without bound.
MAX_IN_FLIGHT = 256

#: What a command's work gives back: the pins it committed, or why it did not.
Outcome = list[PinView] | BaseException


class Commands:
    """The bridge's inbound half: parse, refuse or run each command; answer those with an id.

    ``tasks`` holds every command in flight (and any other work the bridge spawns), so a
    clean stop can let them commit first.
    """

    def __init__(self, board: Board, topics: Topics, *, qos: int, noise: NoiseLimiter) -> None:
        self.board = board
        self.topics = topics
        self.qos = qos
        self.tasks: set[asyncio.Task[None]] = set()
        self._noise = noise

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` as a task the bridge waits for on a clean stop."""
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def finish(self, grace_s: float) -> None:
        """Let the tasks in flight end for up to ``grace_s`` seconds, then cancel the rest."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def receive(self, client: aiomqtt.Client, topic: str, data: bytes, retain: bool) -> None:
        """One message on a command topic (others are ignored): refused, or one task."""
        valued = self.topics.value_of_command(topic)
        if valued is not None:
            self._receive_value(topic, data, retain, *valued)
            return
        pin_id = self.topics.pin_of_command(topic)
        target = self.topics.target_of_command(topic) if pin_id is None else None
        if pin_id is None and target is None:
            return
        named = f"{target[0]}/{target[1]}" if target else str(pin_id)
        if retain:
            # A retained command would switch the pin again on every reconnect.
            self._refuse(client, command_id(data), named, "not_allowed",
                         "retained commands are ignored")
            self._noise("ignored a retained command on %s (publish commands without the "
                        "retain flag)", topic)
            return
        try:
            command = parse_command(data if data.strip() or target is None else b"ON")
            if target is not None and (command.pulse or (
                    target[0] == "scene" and command.action != "on")):
                raise MqttPayloadError("expected ON, OFF or TOGGLE for a group, ON for a "
                                       "scene")
        except MqttPayloadError as exc:
            self._refuse(client, command_id(data), named, "invalid", str(exc))
            self._noise("ignored a command on %s: %s", topic, exc)
            return
        if len(self.tasks) >= MAX_IN_FLIGHT:
            self._refuse(client, command.id, named, "busy",
                         f"{MAX_IN_FLIGHT} commands already in progress")
            self._noise("ignored a command on %s: %d commands already in progress",
                        topic, MAX_IN_FLIGHT)
            return
        work = (self._execute_many(*target, command) if target is not None
                else self._execute(str(pin_id), command))
        self.spawn(self._answered(client, command, named, self._guarded(topic, work)))

    def _receive_value(self, topic: str, data: bytes, retain: bool, pin_id: str,
                       kind: str) -> None:
        """A level or angle on ``<base>/<pin>/level|angle/set``: checked, then one task."""
        if retain:
            self._noise("ignored a retained command on %s (publish commands without the "
                        "retain flag)", topic)
            return
        try:
            value = parse_value(data, kind)
        except MqttPayloadError as exc:
            self._noise("ignored a command on %s: %s", topic, exc)
            return
        if len(self.tasks) >= MAX_IN_FLIGHT:
            self._noise("ignored a command on %s: %d commands already in progress",
                        topic, MAX_IN_FLIGHT)
            return

        async def run() -> None:
            await self._guarded(topic, self._set_value(pin_id, kind, value))

        self.spawn(run())

    async def _set_value(self, pin_id: str, kind: str, value: float | None) -> list[PinView]:
        """A pwm pin's level or a servo's angle (``None``: detached)."""
        if kind == "level":
            return [await self.board.set_level(pin_id, value, ACTOR)]
        return [await self.board.set_angle(pin_id, value, ACTOR)]

    async def _execute(self, pin_id: str, command: Command) -> list[PinView]:
        """One pin's command through the board core."""
        if command.pulse:
            return [await self.board.pulse(pin_id, command.pulse_ms, ACTOR)]
        return [await self.board.command(pin_id, command.action, ACTOR)]

    async def _execute_many(self, kind: str, name: str, command: Command) -> list[PinView]:
        """A group or scene command: one commit through the board, like the HTTP route."""
        applied: Applied
        if kind == "scene":
            applied = await groups.apply_scene(self.board, name, Actor("mqtt", "scene"))
        else:
            applied = await groups.switch_group(self.board, name, command.action,
                                                Actor("mqtt", "group"))
        return list(applied.pins)

    async def _guarded(self, topic: str, work: Awaitable[list[PinView]]) -> Outcome:
        """Await a command's work; every failure is logged by kind and returned."""
        try:
            return await work
        except (UnknownPinError, UnknownNameError, PinModeError, PinValueError) as exc:
            self._noise("ignored a command on %s: %s", topic, exc)
            return exc
        except StoreError as exc:
            log.warning("mqtt: command on %s not applied: %s", topic, exc)
            return exc
        except Exception as exc:
            log.exception("mqtt: command on %s failed", topic)
            return exc

    def _refuse(self, client: aiomqtt.Client, ident: str | None, target: str,
                reason: fleetwire.Refusal, detail: str) -> None:
        if ident is not None and len(self.tasks) < 2 * MAX_IN_FLIGHT:
            self.spawn(self._answer(client, device.refused_payload(ident, target, reason,
                                                                   detail)))

    async def _answer(self, client: aiomqtt.Client, payload: bytes) -> None:
        """Publish a result; a lost broker loses it (the hub reports no answer)."""
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(fleetwire.result_topic(self.topics.base), payload,
                                 qos=self.qos)

    async def _answered(self, client: aiomqtt.Client, command: Command, target: str,
                        work: Awaitable[Outcome]) -> None:
        """Run a command; with an id, say how it went once it is committed (or refused)."""
        outcome = await work
        if command.id is None:
            return
        if isinstance(outcome, BaseException):
            payload = device.refused_payload(command.id, target, device.refusal_of(outcome),
                                             str(outcome).strip("'\""))
        else:
            seq = max((v.seq for v in outcome), default=0)
            payload = device.ok_payload(command.id, target, seq, [v.as_json() for v in outcome])
        await self._answer(client, payload)

