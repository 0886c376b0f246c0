"""The rule engine on a fake clock over the simulated board: hysteresis, for, between,
unless_pin, cooldown, loop protection, interlocks; and the rules API in process."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from pinpanel import auth, runtime
from pinpanel.automation.rules import MAX_DEPTH, RuleEngine
from pinpanel.automation.when import Place
from pinpanel.board import Board
from pinpanel.changes import Actor
from pinpanel.config import LocationConfig
from pinpanel.errors import ConfigError
from pinpanel.web.app import create_app
from tests.support import FakeClock
from tests.unit.conftest import config_of, running_board, settle

BERLIN = Place.of(LocationConfig(52.52, 13.405, "Europe/Berlin"))
USER = Actor("tester", "api")
PINS = """
[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 5
id = "door"
mode = "input"
pull = "down"

[[pins]]
pin = 17
id = "porch"

[[pins]]
pin = 27
id = "override"

[[pins]]
pin = 22
id = "fan"

[[pins]]
pin = 23
id = "heater"

[[interlocks]]
pins = ["fan", "heater"]

[[sensors]]
id = "tank"
kind = "cpu_temperature"
"""


@dataclass
class Sample:
    sensor: str
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def berlin(hour: int, minute: int = 0) -> float:
    return datetime(2026, 12, 2, hour, minute, tzinfo=BERLIN.zone).timestamp()


def engine_for(board: Board, clock: FakeClock) -> RuleEngine:
    engine = RuleEngine(board, BERLIN, clock, store=board.store)
    board.hub.add_listener(engine.on_change)
    engine.replace(board.config.rules)
    return engine


def fan_rows(board: Board) -> list[bool]:
    return [r.new for r in reversed(board.store.history(pins=[22], limit=1000))
            if r.actor.name == "rule:thermostat"]


THERMOSTAT = PINS + """
[[rules]]
id = "thermostat"
when = { sensor = "tank", above = 28.0, below = 27.0 }
then = [{ pins = ["fan"], action = "on" }]
otherwise = [{ pins = ["fan"], action = "off" }]
"""


async def test_hysteresis_keeps_noisy_readings_from_chattering(tmp_path: Path) -> None:
    clock = FakeClock(berlin(12))
    async with running_board(tmp_path, THERMOSTAT, clock=clock) as board:
        engine = engine_for(board, clock)
        noise = random.Random(7)
        # Warming from 26 to 30 and cooling back, each read +-0.4 degrees of noise.
        trend = [26 + i * 0.05 for i in range(80)] + [30 - i * 0.05 for i in range(80)]
        readings = [t + noise.uniform(-0.4, 0.4) for t in trend]
        crossings_of_28 = sum(1 for a, b in itertools.pairwise(readings)
                              if (a > 28) != (b > 28))
        assert crossings_of_28 > 4  # the noise really crosses the threshold many times
        for value in readings:
            engine.on_sample(Sample("tank", {"temperature": value}))
            await settle(2)
        await settle()
        assert fan_rows(board) == [True, False]  # on once, off once: no chatter
        assert board.view("fan").state is False
        engine.on_sample(Sample("tank", error="crc"))  # an error reading changes nothing
        assert engine.state("thermostat").condition is False  # type: ignore[union-attr]


DOOR = PINS + """
[[rules]]
id = "porch-door"
when = { pin = "door", to = "on" }
for = "30s"
between = ["sunset", "23:00"]
unless_pin = "override"
cooldown = "10m"
then = [{ pins = ["porch"], action = "on" }]
"""


async def open_door(board: Board, clock: FakeClock, hold: float = 31) -> None:
    await board.simulate("door", True)
    await settle(3)
    clock.advance(hold)
    await settle()
    await board.simulate("door", False)
    await settle(3)


async def test_for_between_unless_pin_and_cooldown(tmp_path: Path) -> None:
    clock = FakeClock(berlin(12))  # noon: outside sunset-23:00
    async with running_board(tmp_path, DOOR, clock=clock) as board:
        engine = engine_for(board, clock)
        await open_door(board, clock)
        assert board.view("porch").state is False  # outside the window
        clock.now = berlin(19)
        await open_door(board, clock, hold=10)  # shut again before `for` ran out
        assert board.view("porch").state is False
        await board.command("override", "on", USER)
        await open_door(board, clock)
        assert board.view("porch").state is False  # the manual override holds
        await board.command("override", "off", USER)
        await open_door(board, clock)
        assert board.view("porch").state is True
        row = board.store.history(pins=[17], limit=1)[0]
        assert (row.actor.name, row.actor.cause) == ("rule:porch-door", "rule")
        await board.command("porch", "off", USER)
        await open_door(board, clock)  # within the 10 minute cooldown
        assert board.view("porch").state is False
        clock.advance(600)
        await open_door(board, clock)
        assert board.view("porch").state is True
        assert engine.as_json("porch-door")["last_fired"] is not None


LOOP = PINS + """
[[rules]]
id = "ping"
when = { pin = "porch", to = "on" }
then = [{ pins = ["porch"], action = "off" }]

[[rules]]
id = "pong"
when = { pin = "porch", to = "off" }
then = [{ pins = ["porch"], action = "on" }]

[[rules]]
id = "heat"
when = { pin = "override", to = "on" }
then = [{ pins = ["fan"], action = "on" }, { pins = ["heater"], action = "on" }]
"""


async def test_rules_that_trigger_each_other_are_stopped_not_hung(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(berlin(12))
    async with running_board(tmp_path, LOOP, clock=clock) as board:
        engine = engine_for(board, clock)
        await board.command("porch", "on", USER)
        await settle(60)
        stopped = [r for r in ("ping", "pong") if engine.state(r).stopped]  # type: ignore[union-attr]
        assert stopped, "the loop was not stopped"
        reason = engine.state(stopped[0]).stopped  # type: ignore[union-attr]
        assert reason is not None and "loop" in reason and str(MAX_DEPTH) in reason
        assert any("stopped: loop" in r.message for r in caplog.records)
        audit = board.store.automation_audit()
        assert audit[0]["action"] == "stopped" and audit[0]["item"] == stopped[0]
        changes = len(board.store.history(pins=[17], limit=1000))
        assert changes <= MAX_DEPTH + 3  # a handful of changes, never a runaway
        # Interlocks hold when rules act: fan and heater never on together.
        await board.command("override", "on", USER)
        await settle(20)
        assert not (board.view("fan").state and board.view("heater").state)
        state = {22: False, 23: False}
        for row in reversed(board.store.history(pins=[22, 23], limit=100)):
            state[row.pin] = row.new
            assert not all(state.values())


def test_bad_rules_are_reported_with_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        config_of(PINS + """
[[rules]]
id = "x"
when = { sensor = "tank", above = 20.0, below = 25.0 }
for = "soon"
between = ["sunset"]
then = [{ pins = ["door"], action = "on" }, { notify = "nobody", message = "hi" }]
""")
    problems = caught.value.problems
    for expected in ("rules[0].when.below: 25.0 must not be above 20.0",
                     "rules[0].for: expected a duration", "rules[0].between: expected two",
                     "rules[0].then[0].pins[0]: pin 5 is an input",
                     "rules[0].then[1].notify: 'nobody' is not a configured notifier"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


async def test_rules_over_the_api(tmp_path: Path) -> None:
    config = config_of(DOOR + f'\n[server]\ndata_dir = "{tmp_path}"\n[gpio]\n'
                       'backend = "simulated"\n')
    async with runtime.opened(config) as opened:
        admin = auth.create_token(opened.store, "alice", "admin")
        app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry, schedules=opened.schedules, rules=opened.rules)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1",
                                     headers={"Authorization": f"Bearer {admin}"}) as http:
            listed = (await http.get("/api/v1/rules")).json()["rules"]
            assert listed[0]["id"] == "porch-door" and listed[0]["when"] == {
                "pin": "door", "to": "on"}
            assert listed[0]["last_fired"] is None and listed[0]["source"] == "config"
            made = await http.post("/api/v1/rules", json={
                "id": "hall", "when": {"pin": "override", "to": "on"},
                "then": [{"pins": ["porch"], "action": "on"}]})
            assert made.status_code == 201, made.text
            await opened.board.command("override", "on", USER)
            await settle()
            assert opened.board.view("porch").state is True
            fired = (await http.get("/api/v1/rules/hall")).json()
            assert fired["last_fired"] is not None
            off = await http.put("/api/v1/rules/porch-door", json={"enabled": False})
            assert off.status_code == 200 and off.json()["enabled"] is False
            assert (await http.put("/api/v1/rules/porch-door",
                                   json={"cooldown": "1m"})).status_code == 409
            bad = await http.post("/api/v1/rules", json={"id": "y", "then": []})
            assert bad.status_code == 422 and "when: required" in bad.json()["detail"]
            assert (await http.delete("/api/v1/rules/hall")).status_code == 204
        actions = [(a["item"], a["action"]) for a in reversed(opened.store.automation_audit())]
        assert actions == [("hall", "create"), ("porch-door", "disable"), ("hall", "delete")]


async def test_readings_from_the_sampler_drive_a_rule_in_the_runtime(tmp_path: Path) -> None:
    """The engine listens to the real sampler (simulated sensor), not only to test samples."""
    config = config_of(THERMOSTAT + f'\n[server]\ndata_dir = "{tmp_path}"\n[gpio]\n'
                       'backend = "simulated"\n')
    async with runtime.opened(config) as opened:
        assert opened.sampler is not None
        await opened.sampler.simulate("tank", value=30.0)
        await settle()
        assert opened.board.view("fan").state is True
        await opened.sampler.simulate("tank", value=27.5)  # between the thresholds: stays
        await settle()
        assert opened.board.view("fan").state is True
        await opened.sampler.simulate("tank", value=26.0)
        await settle()
        assert opened.board.view("fan").state is False
        rows = opened.store.history(pins=[22], limit=10)
        assert [(r.new, r.actor.name, r.actor.cause) for r in reversed(rows)][-2:] == [
            (True, "rule:thermostat", "rule"), (False, "rule:thermostat", "rule")]


async def test_a_schedule_run_triggers_a_rule(tmp_path: Path) -> None:
    text = PINS + """
[[schedules]]
id = "evening"
at = "18:00"
pins = ["porch"]

[[rules]]
id = "after-evening"
when = { schedule = "evening" }
then = [{ pins = ["fan"], action = "on" }]
"""
    clock = FakeClock(berlin(17, 59))
    async with running_board(tmp_path, text, clock=clock) as board:
        from pinpanel.automation.scheduler import Scheduler

        engine = engine_for(board, clock)
        scheduler = Scheduler(board, BERLIN, clock)
        scheduler.listeners.append(engine.on_schedule)
        scheduler.replace(board.config.schedules)
        clock.advance(61)
        await settle()
        assert board.view("porch").state is True and board.view("fan").state is True
        row = board.store.history(pins=[22], limit=1)[0]
        assert row.actor.name == "rule:after-evening"
        scheduler.close()


async def test_a_rule_sets_a_pwm_level(tmp_path: Path) -> None:
    text = PINS + """
[[pins]]
pin = 18
id = "lamp"
mode = "pwm"

[[rules]]
id = "dim-on-door"
when = { pin = "door", to = "on" }
then = [{ pins = ["lamp"], action = "level", level = 0.3, fade_ms = 1000 }]
"""
    clock = FakeClock(berlin(12))
    async with running_board(tmp_path, text, clock=clock) as board:
        engine_for(board, clock)
        await board.simulate("door", True)
        await settle()
        assert board.view("lamp").level == 0.3
        assert board.store.history(pins=[18], limit=1)[0].actor.name == "rule:dim-on-door"
