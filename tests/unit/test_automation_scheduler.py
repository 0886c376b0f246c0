"""Schedules running on a fake clock over the simulated board, start-up after a power cut,
and the schedules API (create, edit, enable, delete, audit) in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from pinpanel import auth, runtime
from pinpanel.automation.scheduler import TIMER_MAX_S, Scheduler, initial_states
from pinpanel.automation.when import Place
from pinpanel.config import LocationConfig
from pinpanel.web.app import create_app
from tests.support import FakeClock
from tests.unit.conftest import config_of, running_board, settle

BERLIN = Place.of(LocationConfig(52.52, 13.405, "Europe/Berlin"))
GARDEN = """
[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 17
id = "porch"
initial = "schedule"

[[pins]]
pin = 27
id = "pump"
pulse_ms = 600000

[[schedules]]
id = "porch-on"
at = "20:00"
pins = ["porch"]

[[schedules]]
id = "porch-off"
at = "23:00"
action = "off"
pins = ["porch"]

[[schedules]]
id = "water"
at = "06:00"
action = "pulse"
ms = 1000
pins = ["pump"]
"""


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN.zone).astimezone(UTC)


async def step_to(clock: FakeClock, moment: datetime) -> None:
    """Move the fake clock to ``moment`` in timer-sized steps, letting runs commit."""
    while clock.now < moment.timestamp():
        clock.advance(min(TIMER_MAX_S, moment.timestamp() - clock.now))
        await settle(3)


async def test_schedules_switch_pins_at_their_times_with_their_cause(tmp_path: Path) -> None:
    clock = FakeClock(berlin(2026, 12, 2, 19, 50).timestamp())
    async with running_board(tmp_path, GARDEN, clock=clock) as board:
        scheduler = Scheduler(board, BERLIN, clock)
        scheduler.replace(board.config.schedules)
        assert scheduler.next_run("porch-on") == berlin(2026, 12, 2, 20)
        fired: list[str] = []
        scheduler.listeners.append(lambda s, _: fired.append(s.id))
        await step_to(clock, berlin(2026, 12, 2, 19, 59))
        assert board.view("porch").state is False
        await step_to(clock, berlin(2026, 12, 2, 20, 0, ) + timedelta(seconds=1))
        await settle()
        assert board.view("porch").state is True
        row = board.store.history(pins=[17], limit=1)[0]
        assert (row.actor.name, row.actor.cause, row.new) == ("schedule:porch-on", "schedule",
                                                               True)
        assert scheduler.next_run("porch-on") == berlin(2026, 12, 3, 20)
        await step_to(clock, berlin(2026, 12, 3, 6) + timedelta(seconds=1))
        await settle()
        assert fired == ["porch-on", "porch-off", "water"]
        assert board.view("porch").state is False
        assert board.view("pump").state is True and board.view("pump").pulse_until
        scheduler.close()


async def test_a_missed_pulse_is_not_replayed_but_a_late_state_runs(tmp_path: Path) -> None:
    clock = FakeClock(berlin(2026, 12, 2, 5, 50).timestamp())
    async with running_board(tmp_path, GARDEN, clock=clock) as board:
        scheduler = Scheduler(board, BERLIN, clock)
        scheduler.replace(board.config.schedules)
        clock.advance(3 * 3600)  # the clock jumps (suspended, NTP): 06:00 is 2 h 50 m ago
        await settle()
        assert board.view("pump").state is False  # the pulse was missed, not replayed
        assert scheduler.next_run("water") == berlin(2026, 12, 3, 6)
        scheduler.close()


def test_initial_states_after_a_power_cut() -> None:
    config = config_of(GARDEN)
    # Cut at 19:55, back at 20:05: the 20:00 "on" is the latest event.
    found = initial_states(config, config.schedules, BERLIN, berlin(2026, 12, 2, 20, 5))
    assert list(found) == [17]
    state, actor = found[17]
    assert state is True and (actor.name, actor.cause) == ("schedule:porch-on", "schedule")
    # At 19:59 the latest is yesterday's 23:00 "off"; the pulse is never in it.
    state, actor = initial_states(config, config.schedules, BERLIN,
                                  berlin(2026, 12, 2, 19, 59))[17]
    assert state is False and actor.name == "schedule:porch-off"


async def test_start_up_takes_the_scheduled_state_with_its_cause(tmp_path: Path) -> None:
    config = config_of(GARDEN)
    states = initial_states(config, config.schedules, BERLIN, berlin(2026, 12, 2, 20, 1))
    async with running_board(tmp_path, GARDEN) as board:
        pass  # the first start: restore (off), recorded as the system's
    from pinpanel.board import Board
    from pinpanel.events import EventHub
    from pinpanel.hardware import Hardware
    from pinpanel.store import Store

    store = Store.open(tmp_path)
    board = Board(config, Hardware.open("simulated"), store, EventHub(), clock=FakeClock())
    await board.start(states)
    try:
        assert board.view("porch").state is True
        row = store.history(pins=[17], limit=1)[0]
        assert (row.actor.name, row.actor.cause) == ("schedule:porch-on", "schedule")
    finally:
        await board.close("keep")
        store.close()


async def test_schedules_over_the_api_with_an_audit_row_per_edit(tmp_path: Path) -> None:
    config = config_of(GARDEN + f'\n[server]\ndata_dir = "{tmp_path}"\n[gpio]\n'
                       'backend = "simulated"\n')
    async with runtime.opened(config) as opened:
        admin = auth.create_token(opened.store, "alice", "admin")
        reader = auth.create_token(opened.store, "rita", "read")
        app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry, schedules=opened.schedules)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1") as http:
            def as_(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            listed = (await http.get("/api/v1/schedules", headers=as_(reader))).json()
            ids = [s["id"] for s in listed["schedules"]]
            assert ids == ["porch-on", "porch-off", "water"]
            first = listed["schedules"][0]
            assert first["source"] == "config" and first["does"] == "porch on"
            assert first["next_run"].endswith("Z") and first["next"].endswith("20:00")
            body = {"id": "evening", "at": "sunset-15m", "days": ["mon", "fri"],
                    "pins": ["porch"], "action": "on"}
            denied = await http.post("/api/v1/schedules", json=body, headers=as_(reader))
            assert denied.status_code == 403
            made = await http.post("/api/v1/schedules", json=body, headers=as_(admin))
            assert made.status_code == 201, made.text
            made_json = made.json()
            assert made_json["source"] == "api" and "(sunset-15m)" in made_json["next"]
            assert made_json["when"] == "sunset-15m" and made_json["days"] == ["mon", "fri"]
            again = await http.post("/api/v1/schedules", json=body, headers=as_(admin))
            assert again.status_code == 409
            bad = await http.post("/api/v1/schedules", headers=as_(admin), json={
                "id": "x", "at": "25:00", "cron": "* * *", "pins": ["nope"]})
            assert bad.status_code == 422
            detail = bad.json()["detail"]
            assert "exactly one of at" in detail and "'nope' is not a configured pin" in detail
            off = await http.put("/api/v1/schedules/evening", json={"enabled": False},
                                 headers=as_(admin))
            assert off.status_code == 200 and off.json()["enabled"] is False
            assert off.json()["next_run"] is None and off.json()["next"] == "disabled"
            moved = await http.put("/api/v1/schedules/evening", headers=as_(admin),
                                   json={"cron": "0 21 * * *", "enabled": True})
            assert moved.status_code == 200, moved.text
            assert moved.json()["cron"] == "0 21 * * *" and "at" not in moved.json()
            # The file's schedules: only their switch.
            file_off = await http.put("/api/v1/schedules/water", json={"enabled": False},
                                      headers=as_(admin))
            assert file_off.status_code == 200 and file_off.json()["enabled"] is False
            edit = await http.put("/api/v1/schedules/water", json={"at": "07:00"},
                                  headers=as_(admin))
            assert edit.status_code == 409 and "config file" in edit.text
            assert (await http.delete("/api/v1/schedules/water",
                                      headers=as_(admin))).status_code == 409
            gone = await http.delete("/api/v1/schedules/evening", headers=as_(admin))
            assert gone.status_code == 204
            assert (await http.get("/api/v1/schedules/evening",
                                   headers=as_(reader))).status_code == 404
        audit = opened.store.automation_audit()
        assert [(a["item"], a["action"], a["actor"]) for a in reversed(audit)] == [
            ("evening", "create", "alice"), ("evening", "disable", "alice"),
            ("evening", "update", "alice"), ("water", "disable", "alice"),
            ("evening", "delete", "alice")]
        assert opened.schedules is not None
        assert opened.schedules.scheduler is not None
        assert opened.schedules.scheduler.next_run("water") is None  # disabled: no timer
    # The switch survives a restart.
    async with runtime.opened(config) as reopened:
        assert reopened.schedules is not None
        water = reopened.schedules.entry("water").schedule
        assert water.enabled is False and [s.id for s in reopened.schedules.schedules()] == [
            "porch-on", "porch-off", "water"]


LEVELS = """
[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 18
id = "lamp"
mode = "pwm"

[[pins]]
pin = 17
id = "porch"

[[schedules]]
id = "dim"
at = "21:00"
action = "level"
level = 0.4
fade_ms = 2000
pins = ["lamp"]
"""


async def test_a_level_schedule_fades_a_pwm_pin(tmp_path: Path) -> None:
    clock = FakeClock(berlin(2026, 12, 2, 20, 59).timestamp())
    async with running_board(tmp_path, LEVELS, clock=clock) as board:
        scheduler = Scheduler(board, BERLIN, clock)
        scheduler.replace(board.config.schedules)
        clock.advance(61)
        await settle()
        view = board.view("lamp")
        assert view.level == 0.4  # the target is committed at once; the fade follows
        row = board.store.history(pins=[18], limit=1)[0]
        assert (row.actor.name, row.new_level) == ("schedule:dim", 0.4)
        scheduler.close()


def test_a_level_needs_a_pwm_pin_and_a_level() -> None:
    import pytest

    from pinpanel.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        config_of(LEVELS.replace('pins = ["lamp"]', 'pins = ["porch"]').replace(
            "level = 0.4", "level = 4"))
    problems = caught.value.problems
    assert any("level: action = \"level\" needs a level 0.0 to 1.0" in p for p in problems)
    with pytest.raises(ConfigError) as caught:
        config_of(LEVELS.replace('pins = ["lamp"]', 'pins = ["porch"]'))
    assert any("pin 17 is not a pwm pin" in p for p in caught.value.problems)


EVENING = """
[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 18
id = "lamp"
mode = "pwm"
initial = "schedule"

[[schedules]]
id = "lamp-on"
at = "18:00"
pins = ["lamp"]

[[schedules]]
id = "lamp-dim"
at = "19:00"
action = "level"
level = 0.4
pins = ["lamp"]
"""


async def test_start_up_after_a_power_cut_takes_the_scheduled_level(tmp_path: Path) -> None:
    """The latest on/off/level at or before now wins: the 19:00 level 0.4, not the 18:00 on."""
    config = config_of(EVENING)
    states = initial_states(config, config.schedules, BERLIN, berlin(2026, 12, 2, 19, 30))
    assert states[18][0] == 0.4 and states[18][1].name == "schedule:lamp-dim"
    from pinpanel.board import Board
    from pinpanel.events import EventHub
    from pinpanel.hardware import Hardware
    from pinpanel.store import Store

    store = Store.open(tmp_path)
    board = Board(config, Hardware.open("simulated"), store, EventHub(), clock=FakeClock())
    await board.start(states)
    try:
        assert board.view("lamp").level == 0.4
        row = store.history(pins=[18], limit=1)[0]
        assert (row.actor.name, row.actor.cause, row.new_level) == \
            ("schedule:lamp-dim", "schedule", 0.4)
    finally:
        await board.close("keep")
        store.close()
