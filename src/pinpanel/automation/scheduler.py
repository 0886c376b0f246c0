"""The schedules, running: one timer per enabled schedule on the event loop, no polling.

Each schedule's next run is computed by :mod:`pinpanel.automation.when` and a timer is set
for it on the clock the board uses (tests pass a fake one). A timer is set at most
:data:`TIMER_MAX_S` ahead and re-set on waking if the run is not due yet: a Pi has no
real-time clock and its wall time can jump when NTP syncs after boot, while the event
loop's timers count monotonic time, so a timer set once for 20:00 could fire at the wrong
wall time. Waking every few minutes to look at the wall clock costs nothing measurable.

A run that is found late (the clock jumped past it, the process was suspended) is still run
if it sets a state and is less than :data:`LATE_STATE_S` late; a late pulse or toggle more
than :data:`LATE_PULSE_S` late is skipped and logged: a missed pulse is not replayed. After
a power cut, :func:`initial_states` gives each ``initial = "schedule"`` pin the state its
schedules say is in effect (the runtime hands that to ``board.start()``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from pinpanel.automation import actions
from pinpanel.automation.when import Place, next_run, runs_between
from pinpanel.board import Board, Clock, Timer
from pinpanel.changes import Actor
from pinpanel.config import Config
from pinpanel.errors import PinpanelError
from pinpanel.schedule_config import ScheduleConfig

log = logging.getLogger(__name__)

TIMER_MAX_S = 300.0
LATE_STATE_S = 3600.0
LATE_PULSE_S = 60.0
#: How far back start-up looks for the schedule event in effect now.
LOOK_BACK = timedelta(days=1)
#: Called after a schedule has run (rules listen: "when a schedule fires").
Listener = Callable[[ScheduleConfig, datetime], None]


def actor_of(schedule: ScheduleConfig) -> Actor:
    return Actor(f"schedule:{schedule.id}", "schedule")


def states_of(config: Config, schedule: ScheduleConfig) -> dict[int, bool | float]:
    return actions.states_left(config, pins=schedule.pins, group=schedule.group,
                               scene=schedule.scene, action=schedule.action,
                               level=schedule.level)


def initial_states(config: Config, schedules: Iterable[ScheduleConfig], place: Place,
                   now: datetime) -> dict[int, tuple[bool | float, Actor]]:
    """Each ``initial = "schedule"`` pin's state now: its latest scheduled on/off/level
    (or scene)
    at or before ``now``, looking back :data:`LOOK_BACK`; pins with none are left out
    (the board then restores their last state)."""
    wanted = {p.pin for p in config.pins if p.is_output and p.initial == "schedule"}
    latest: dict[int, tuple[datetime, bool | float, Actor]] = {}
    for schedule in schedules:
        if not schedule.enabled:
            continue
        states = {bcm: s for bcm, s in states_of(config, schedule).items() if bcm in wanted}
        if not states:
            continue
        runs = runs_between(schedule, place, now - LOOK_BACK, now)
        if not runs:
            continue
        for bcm, state in states.items():
            held = latest.get(bcm)
            if held is None or runs[-1] > held[0]:
                latest[bcm] = (runs[-1], state, actor_of(schedule))
    return {bcm: (state, actor) for bcm, (_, state, actor) in latest.items()}


class Scheduler:
    """Timers for the enabled schedules; :meth:`replace` re-reads them after an edit."""

    def __init__(self, board: Board, place: Place, clock: Clock) -> None:
        self.board = board
        self.place = place
        self.clock = clock
        self.listeners: list[Listener] = []
        self._schedules: dict[str, ScheduleConfig] = {}
        self._due: dict[str, datetime | None] = {}
        self._timers: dict[str, Timer] = {}
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_run: dict[str, datetime] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def replace(self, schedules: Iterable[ScheduleConfig]) -> None:
        """Run these schedules from now on (each edit over the API calls this)."""
        self.close()
        self._schedules = {s.id: s for s in schedules}
        self._due = {}
        for schedule in self._schedules.values():
            if schedule.enabled:
                self._arm(schedule, self.now())

    def next_run(self, schedule_id: str) -> datetime | None:
        return self._due.get(schedule_id)

    @property
    def due(self) -> Mapping[str, datetime | None]:
        return self._due

    def close(self) -> None:
        self._generation += 1
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def drain(self) -> None:
        """Wait for runs in progress (a clean stop lets them commit)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _arm(self, schedule: ScheduleConfig, after: datetime) -> None:
        due = next_run(schedule, self.place, after)
        self._due[schedule.id] = due
        if due is None:
            log.warning("schedule %s has no run within a year", schedule.id)
            return
        self._set_timer(schedule.id, due)

    def _set_timer(self, schedule_id: str, due: datetime) -> None:
        delay = min(max((due - self.now()).total_seconds(), 0.0), TIMER_MAX_S)
        generation = self._generation
        self._timers[schedule_id] = self.clock.call_later(
            delay, lambda: self._wake(schedule_id, generation))

    def _wake(self, schedule_id: str, generation: int) -> None:
        if generation != self._generation:
            return  # replaced since
        schedule = self._schedules.get(schedule_id)
        due = self._due.get(schedule_id)
        if schedule is None or due is None:
            return
        now = self.now()
        if now < due:
            self._set_timer(schedule_id, due)  # woke to look at the wall clock: not yet
            return
        late = (now - due).total_seconds()
        limit = LATE_STATE_S if schedule.sets_state else LATE_PULSE_S
        if late > limit:
            log.warning("schedule %s: missed its run at %s (%.0f s late; the clock jumped or "
                        "the process was stopped); not replayed", schedule_id,
                        due.isoformat(), late)
            self._arm(schedule, now)
            return
        self._spawn(self._run(schedule, due))
        self._arm(schedule, due)

    async def _run(self, schedule: ScheduleConfig, due: datetime) -> None:
        try:
            await actions.run_target(self.board, pins=schedule.pins, group=schedule.group,
                                     scene=schedule.scene, action=schedule.action,
                                     ms=schedule.ms, actor=actor_of(schedule),
                                     level=schedule.level, fade_ms=schedule.fade_ms)
        except PinpanelError as exc:  # a refused action or a failed commit: the next goes on
            log.warning("schedule %s: its run at %s failed: %s", schedule.id,
                        due.isoformat(), exc)
            return
        except Exception:
            log.exception("schedule %s: its run at %s failed", schedule.id, due.isoformat())
            return
        self.last_run[schedule.id] = due
        log.info("schedule %s ran (%s)", schedule.id, due.isoformat())
        for listener in list(self.listeners):
            try:
                listener(schedule, due)
            except Exception:
                log.exception("a schedule listener failed")

    def _spawn(self, work: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
