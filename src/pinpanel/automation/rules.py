"""The rule engine: small declarative rules evaluated on board changes, readings and
schedule runs; their actions take the board's one path as ``rule:<id>``, cause ``rule``.

A rule's condition is a state (a pin is on; a reading is above its threshold, with
hysteresis), so it fires on the condition *becoming* true (``then``) and, for a pin or a
sensor, false (``otherwise``); a schedule trigger is a moment. ``for`` arms a timer on the
board's clock when the condition turns true and fires only if it is still true when the
timer runs; ``between``, ``unless_pin`` and ``cooldown`` are checked at that moment.

Loop protection lives here, not in each rule: every change a rule makes carries its actor
``rule:<id>``, so a change that triggers a rule knows how deep in a chain of rules it is. A
chain deeper than :data:`MAX_DEPTH`, or a rule firing more than :data:`RATE_MAX` times in
:data:`RATE_WINDOW_S`, stops that rule: one error line in the log, an audit row
(``stopped``), ``stopped`` in the API and a ``rule_stopped`` notice (the event stream's), until
it is enabled again, which sends ``rule_resumed``. Never a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pinpanel.automation import actions
from pinpanel.automation.notices import Notice, Notices, StopReason
from pinpanel.automation.notify import Outbox
from pinpanel.automation.when import Place, moment_on
from pinpanel.board import Board, Clock, Timer
from pinpanel.changes import Actor, Change, format_time
from pinpanel.errors import PinpanelError
from pinpanel.rule_config import RuleAction, RuleConfig
from pinpanel.schedule_config import ScheduleConfig, parse_moment
from pinpanel.store import Store

log = logging.getLogger(__name__)

MAX_DEPTH = 4
RATE_MAX = 20
RATE_WINDOW_S = 60.0
KIND = "rule"


@dataclass
class RuleState:
    rule: RuleConfig
    condition: bool | None = None
    hold: Timer | None = None
    hold_depth: int = 0
    last_fired: float | None = None
    fires: deque[float] = field(default_factory=deque)
    stopped: str | None = None
    #: Which limit stopped it (``depth`` or ``rate``) and when, on the board's clock.
    stopped_by: StopReason | None = None
    stopped_at: float | None = None
    depth: int = 0


def actor_of(rule: RuleConfig) -> Actor:
    return Actor(f"rule:{rule.id}", "rule")


class RuleEngine:
    """Every enabled rule's state; hub, sampler and scheduler listeners feed it."""

    def __init__(self, board: Board, place: Place, clock: Clock, *, store: Store,
                 outbox: Outbox | None = None) -> None:
        self.board = board
        self.place = place
        self.clock = clock
        self.store = store
        self.outbox = outbox
        self._states: dict[str, RuleState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: rule_stopped / rule_resumed for the event stream.
        self.notices = Notices()

    # -- the rules --------------------------------------------------------------------------

    def replace(self, rules: Iterable[RuleConfig]) -> None:
        """Run these rules from now on; a pin rule starts from the pin as it is (no fire)."""
        old = self._states
        self._states = {}
        for rule in rules:
            state = RuleState(rule)
            previous = old.get(rule.id)
            if previous is not None:
                state.last_fired = previous.last_fired
                if previous.rule.enabled == rule.enabled:
                    state.stopped = previous.stopped
                    state.stopped_by, state.stopped_at = previous.stopped_by, previous.stopped_at
                if previous.hold is not None:
                    previous.hold.cancel()
            if rule.pin is not None:
                state.condition = self.board.view(rule.pin).state == rule.to
            self._states[rule.id] = state
        for state in old.values():
            if state.hold is not None and state.rule.id not in self._states:
                state.hold.cancel()
            now = self._states.get(state.rule.id)
            if state.stopped and (now is None or not now.stopped):
                # disabled or removed while stopped: whoever showed it stopped hears so
                self._resumed(state.rule, enabled=now is not None and now.rule.enabled)

    def resume(self, rule_id: str) -> None:
        """Lift the loop protection's stop (the rule is being enabled again)."""
        state = self._states.get(rule_id)
        if state is not None and state.stopped:
            state.stopped = state.stopped_by = state.stopped_at = None
            self._resumed(state.rule, enabled=True)

    def stopped_notices(self) -> list[Notice]:
        """A ``rule_stopped`` notice per rule stopped now (a new stream's opening)."""
        return [self._stopped_notice(s) for s in self._states.values() if s.stopped]

    def state(self, rule_id: str) -> RuleState | None:
        return self._states.get(rule_id)

    def as_json(self, rule_id: str) -> dict[str, Any]:
        state = self._states.get(rule_id)
        if state is None:
            return {"last_fired": None, "stopped": None, "condition": None}
        fired = state.last_fired
        return {"last_fired": format_time(datetime.fromtimestamp(fired, UTC)) if fired else None,
                "stopped": state.stopped, "condition": state.condition}

    def close(self) -> None:
        for state in self._states.values():
            if state.hold is not None:
                state.hold.cancel()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- triggers ---------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """Hub listener: a committed pin change."""
        depth = 0
        name = change.committed.actor.name
        if name.startswith("rule:"):
            cause = self._states.get(name[5:])
            depth = (cause.depth if cause else 0) + 1
        for state in list(self._states.values()):
            rule = state.rule
            if rule.pin == change.committed.pin and rule.enabled:
                self._transition(state, change.pin.state == rule.to, depth)

    def on_sample(self, sample: Any) -> None:
        """Sampler listener: a published reading (``sensor``, ``values``, ``error``)."""
        if getattr(sample, "error", None):
            return
        for state in list(self._states.values()):
            rule = state.rule
            if rule.sensor != sample.sensor or not rule.enabled:
                continue
            values = dict(sample.values)
            value = values.get(rule.reading) if rule.reading else next(iter(values.values()),
                                                                        None)
            if value is None:
                continue
            condition = self._threshold(rule, float(value), state.condition)
            if condition is not None:
                self._transition(state, condition, 0)

    @staticmethod
    def _threshold(rule: RuleConfig, value: float, now: bool | None) -> bool | None:
        """True above ``above``, false below ``below``; in between, as it was (hysteresis)."""
        above, below = rule.above, rule.below
        if above is not None and value > above:
            return True
        if below is not None and value < below:
            return above is None  # with both: false below `below`; only below: true
        if above is None:  # only below: true below it, false at or above it
            return False
        if below is None:  # only above: false at or below it
            return False
        return now

    def on_schedule(self, schedule: ScheduleConfig, due: datetime) -> None:
        """Scheduler listener: a schedule ran."""
        for state in list(self._states.values()):
            if state.rule.schedule == schedule.id and state.rule.enabled:
                self._fire(state, state.rule.then, 0)

    # -- firing -----------------------------------------------------------------------------

    def _transition(self, state: RuleState, condition: bool, depth: int) -> None:
        before, state.condition = state.condition, condition
        if before == condition:
            return
        rule = state.rule
        if state.hold is not None:
            state.hold.cancel()
            state.hold = None
        if condition:
            if rule.hold_s:
                state.hold_depth = depth
                state.hold = self.clock.call_later(rule.hold_s, lambda: self._held(state))
            else:
                self._fire(state, rule.then, depth)
        elif rule.otherwise and before is not None:
            self._fire(state, rule.otherwise, depth, checks=False)

    def _held(self, state: RuleState) -> None:
        state.hold = None
        if self._states.get(state.rule.id) is state and state.condition:
            self._fire(state, state.rule.then, state.hold_depth)

    def _fire(self, state: RuleState, then: tuple[RuleAction, ...], depth: int, *,
              checks: bool = True) -> None:
        rule = state.rule
        if state.stopped or not rule.enabled:
            return
        now = self.clock.time()
        if depth > MAX_DEPTH:
            self._stop(state, "depth", f"loop: it was triggered {depth} rules deep (more than "
                              f"{MAX_DEPTH}); rules trigger each other")
            return
        while state.fires and now - state.fires[0] > RATE_WINDOW_S:
            state.fires.popleft()
        if len(state.fires) >= RATE_MAX:
            self._stop(state, "rate", f"loop: it fired {len(state.fires)} times within "
                              f"{RATE_WINDOW_S:.0f} s")
            return
        if checks:
            if rule.between and not self._in_window(rule.between, now):
                log.debug("rule %s: outside %s-%s", rule.id, *rule.between)
                return
            if rule.unless_pin is not None and self.board.view(rule.unless_pin).state:
                log.info("rule %s: not run, %s is on", rule.id,
                         self.board.resolve(rule.unless_pin).id)
                return
            if rule.cooldown_s and state.last_fired is not None and \
                    now - state.last_fired < rule.cooldown_s:
                log.info("rule %s: in its cooldown", rule.id)
                return
        state.fires.append(now)
        state.last_fired = now
        state.depth = depth
        log.info("rule %s fired", rule.id)
        task = asyncio.get_running_loop().create_task(self._run(rule, then))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_window(self, window: tuple[str, str], now: float) -> bool:
        instant = datetime.fromtimestamp(now, UTC)
        today = instant.astimezone(self.place.zone).date()
        start_m, end_m = parse_moment(window[0]), parse_moment(window[1])
        if start_m is None or end_m is None:
            return False
        start = moment_on(self.place, start_m, today)
        end = moment_on(self.place, end_m, today)
        if start is None or end is None:  # a sun event that does not happen today
            return False
        if start <= end:
            return start <= instant < end
        return instant >= start or instant < end  # wraps past midnight

    def _stop(self, state: RuleState, by: StopReason, reason: str) -> None:
        state.stopped = reason
        state.stopped_by, state.stopped_at = by, self.clock.time()
        if state.hold is not None:
            state.hold.cancel()
            state.hold = None
        log.error("rule %s stopped: %s; enable it again to restart it", state.rule.id, reason)
        self.store.audit_automation(KIND, state.rule.id, "stopped", "rule engine",
                                    json.dumps({"reason": reason}))
        self.notices.publish(self._stopped_notice(state))

    def _stopped_notice(self, state: RuleState) -> Notice:
        return Notice("rule_stopped", {
            "rule": state.rule.id, "name": state.rule.name, "reason": state.stopped_by,
            "detail": state.stopped, "at": self._iso(state.stopped_at)})

    def _resumed(self, rule: RuleConfig, *, enabled: bool) -> None:
        self.notices.publish(Notice("rule_resumed", {
            "rule": rule.id, "name": rule.name, "enabled": enabled,
            "at": self._iso(self.clock.time())}))

    @staticmethod
    def _iso(when: float | None) -> str | None:
        return None if when is None else format_time(datetime.fromtimestamp(when, UTC))

    async def _run(self, rule: RuleConfig, then: tuple[RuleAction, ...]) -> None:
        actor = actor_of(rule)
        for action in then:
            try:
                if action.notify:
                    if self.outbox is None:
                        log.warning("rule %s: no outbox for notify %s", rule.id, action.notify)
                        continue
                    await self.outbox.queue(action.notify, {
                        "rule": rule.id, "name": rule.name, "message": action.message,
                        "title": action.title or rule.name,
                        "at": format_time(datetime.fromtimestamp(self.clock.time(), UTC))})
                else:
                    await actions.run_target(self.board, pins=action.pins, group=action.group,
                                             scene=action.scene, action=action.action,
                                             ms=action.ms, actor=actor, level=action.level,
                                             fade_ms=action.fade_ms)
            except PinpanelError as exc:
                log.warning("rule %s: an action failed: %s", rule.id, exc)
            except Exception:
                log.exception("rule %s: an action failed", rule.id)
