"""pwm levels and servo angles on the board's one path: validation, memory, fades, interlocks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pinpanel.board import Board
from pinpanel.changes import Actor, Change, utc_now
from pinpanel.config import parse
from pinpanel.errors import ConfigError, PinModeError, PinValueError
from pinpanel.levels import FADE_STEP_S, check_angle, check_level
from pinpanel.store import Store
from tests.support import FakeClock
from tests.unit.conftest import config_of, running_board, settle

USER = Actor("tester", "api", "127.0.0.1")
PINS = """
[[pins]]
pin = 18
id = "lamp"
mode = "pwm"
[[pins]]
pin = 19
id = "fan"
mode = "pwm"
min_level = 0.3
fade_ms = 1000
[[pins]]
pin = 12
id = "blind"
mode = "servo"
min_angle = 0
max_angle = 180
[[pins]]
pin = 23
"""


def collect(board: Board) -> list[Change]:
    seen: list[Change] = []
    board.hub.add_listener(seen.append)
    return seen


# -- config ---------------------------------------------------------------------------------


def test_pwm_and_servo_settings_have_defaults() -> None:
    lamp, fan, blind, _ = config_of(PINS).pins
    assert (lamp.frequency_hz, lamp.min_level, lamp.fade_ms) == (100, 0.0, 0)
    assert (fan.min_level, fan.fade_ms) == (0.3, 1000)
    assert (blind.min_angle, blind.max_angle, blind.min_pulse_ms, blind.max_pulse_ms,
            blind.frame_ms) == (0.0, 180.0, 1.0, 2.0, 20.0)
    assert lamp.is_output and blind.is_output


def test_every_pwm_and_servo_problem_is_reported_at_once_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"pins": [
            {"pin": 18, "mode": "pwm", "min_level": 1.5, "frequency_hz": 0, "min_angle": 0,
             "ha_type": "cover"},
            {"pin": 12, "mode": "servo", "min_pulse_ms": 2, "max_pulse_ms": 1.5,
             "fade_ms": 10, "min_angle": 45, "max_angle": 45.0},
            {"pin": 13, "mode": "servo", "max_pulse_ms": 3, "frame_ms": 2.5},
            {"pin": 23, "min_level": 0.2, "ha_type": "fan"},
            {"pin": 24, "mode": "pwm", "min_level": "half"},
            {"pin": 25, "mode": "pwm", "min_level": float("nan")},
        ]})
    assert caught.value.problems == [
        "pins[0].min_level: must be between 0.0 and 1.0, got 1.5",
        "pins[0].frequency_hz: must be between 1 and 10000, got 0",
        "pins[0].min_angle: applies only to servo pins",
        "pins[0].ha_type: a pwm pin is one of light, fan, got 'cover'",
        "pins[1].fade_ms: applies only to pwm pins",
        "pins[1].max_angle: must differ from min_angle (45.0)",
        "pins[1].max_pulse_ms: must be above min_pulse_ms (2.0), got 1.5",
        "pins[2].frame_ms: must be longer than max_pulse_ms (3.0), got 2.5",
        "pins[3].min_level: applies only to pwm pins",
        "pins[3].ha_type: applies only to pwm and servo pins",
        "pins[4].min_level: expected a number, got str",
        "pins[5].min_level: expected a finite number, got nan",
    ]


def test_a_reversed_servo_is_valid() -> None:
    servo = parse({"pins": [{"pin": 12, "mode": "servo", "min_angle": 90,
                             "max_angle": -90}]}).pins[0]
    assert check_angle(servo, -90) == -90.0 and check_angle(servo, 90) == 90.0


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf"), "0.5", True, None])
def test_a_level_out_of_range_or_of_the_wrong_type_is_refused(bad: object) -> None:
    lamp = config_of(PINS).pins[0]
    with pytest.raises(PinValueError):
        check_level(lamp, bad)


def test_a_level_below_min_level_is_raised_to_it_but_zero_stays_off() -> None:
    fan = config_of(PINS).pins[1]
    assert (check_level(fan, 0.1), check_level(fan, 0.0), check_level(fan, 0.5)) == \
        (0.3, 0.0, 0.5)


@pytest.mark.parametrize("bad", [-1, 180.5, "90", False])
def test_an_angle_outside_the_servo_range_is_refused(bad: object) -> None:
    blind = config_of(PINS).pins[2]
    with pytest.raises(PinValueError):
        check_angle(blind, bad)


async def test_levels_and_angles_go_only_to_their_kind(tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        with pytest.raises(PinModeError):
            await board.set_level("blind", 0.5, USER)
        with pytest.raises(PinModeError):
            await board.set_angle("lamp", 10, USER)
        with pytest.raises(PinModeError):
            await board.set_level(23, 0.5, USER)
        with pytest.raises(PinValueError):
            await board.set_level("lamp", 0.5, USER, fade_ms=-1)
        assert board.hub.last_seq == max(v.seq for v in board.views())


# -- the one path -----------------------------------------------------------------------------


async def test_a_level_is_written_committed_published_and_audited_with_old_and_new(
        tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        seen = collect(board)
        view = await board.set_level("lamp", 0.4, USER)
        assert (view.state, view.level) == (True, 0.4)
        assert view.as_json()["level"] == 0.4
        assert board.hardware.line_pwm(18) == (pytest.approx(0.4), 100.0)
        assert [c.seq for c in seen] == [view.seq] and seen[0].pin is view
        row = board.store.history(pins=[18], limit=1)[0]
        assert (row.seq, row.old, row.new, row.old_level, row.new_level) == \
            (view.seq, False, True, 0.0, 0.4)
        assert row.as_json()["old_level"] == 0.0 and row.as_json()["new_level"] == 0.4
        again = await board.set_level("lamp", 0.4, USER)
        assert again.seq == view.seq and len(seen) == 1  # nothing changed, nothing published


async def test_an_angle_turns_the_servo_and_none_detaches_it(tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        turned = await board.set_angle("blind", 45, USER)
        assert (turned.state, turned.angle) == (True, 45.0)
        duty, frequency = board.hardware.line_pwm(12)
        assert frequency == 50.0 and duty * 20 == pytest.approx(1.25)  # ms of a 20 ms frame
        limp = await board.set_angle("blind", None, USER)
        assert (limp.state, limp.angle) == (False, None)
        assert limp.as_json()["angle"] is None
        assert board.hardware.line_pwm(12) == (0.0, None)  # no pulses at all
        rows = board.store.history(pins=[12], limit=2)
        assert [(r.old_angle, r.new_angle) for r in rows] == [(45.0, None), (None, 45.0)]


async def test_on_brings_back_the_last_level_above_zero(tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        assert (await board.command("lamp", "on", USER)).level == 1.0  # nothing remembered
        await board.set_level("lamp", 0.25, USER)
        assert (await board.command("lamp", "off", USER)).level == 0.0
        assert (await board.command("lamp", "on", USER)).level == 0.25
        assert (await board.command("lamp", "toggle", USER)).level == 0.0
        assert (await board.command("lamp", "toggle", USER)).level == 0.25
        await board.set_angle("blind", 30, USER)
        await board.command("blind", "off", USER)
        assert (await board.command("blind", "on", USER)).angle == 30.0


async def test_brightness_memory_survives_a_restart_while_off(tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        await board.set_level("lamp", 0.6, USER)
        await board.command("lamp", "off", USER)
    async with running_board(tmp_path, PINS) as board:
        assert board.view("lamp").level == 0.0
        assert (await board.command("lamp", "on", USER)).level == 0.6


async def test_levels_and_angles_are_restored_after_a_restart(tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        await board.set_level("lamp", 0.35, USER)
        await board.set_angle("blind", 120, USER)
        seq = board.hub.last_seq
    async with running_board(tmp_path, PINS) as board:
        assert (board.view("lamp").level, board.view("blind").angle) == (0.35, 120.0)
        assert board.hardware.line_pwm(18)[0] == pytest.approx(0.35)
        assert board.hub.last_seq == seq  # restored as it was: nothing to record


async def test_initial_on_starts_at_the_remembered_level(tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS) as board:
        await board.set_level("lamp", 0.7, USER)
        await board.command("lamp", "off", USER)
    text = PINS.replace('id = "lamp"\nmode = "pwm"', 'id = "lamp"\nmode = "pwm"\ninitial = "on"')
    async with running_board(tmp_path, text) as board:
        assert board.view("lamp").level == 0.7
        assert board.store.history(pins=[18], limit=1)[0].actor.cause == "startup"


async def test_on_exit_off_sets_level_zero_and_detaches_through_the_one_path(
        tmp_path: Path) -> None:
    async with running_board(tmp_path, PINS, on_exit="off") as board:
        await board.set_level("lamp", 0.5, USER)
        await board.set_angle("blind", 10, USER)
    store = Store.open(tmp_path)
    rows = {r.pin: r for r in store.history(limit=2)}
    store.close()
    assert (rows[18].new_level, rows[18].actor.cause) == (0.0, "shutdown")
    assert (rows[12].old_angle, rows[12].new_angle) == (10.0, None)


# -- fades ------------------------------------------------------------------------------------


async def test_a_fade_commits_its_target_at_once_and_moves_the_hardware_in_steps(
        tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, PINS, clock=clock) as board:
        seen = collect(board)
        t0 = clock.now
        view = await board.set_level("lamp", 0.8, USER, fade_ms=2000)
        assert view.level == 0.8 and view.fade_until is not None
        assert view.as_json()["fade_until"] == view.fade_until
        assert [c.seq for c in seen] == [view.seq]
        assert board.store.history(pins=[18], limit=1)[0].new_level == 0.8
        assert board.hardware.line_pwm(18)[0] == 0.0  # the hardware starts where it was
        for moved in (0.5, 1.0):
            clock.advance(moved - (clock.now - t0) + FADE_STEP_S * 1.5)
            # the last step ran at most one step ago, at the level of its time
            level = board.hardware.line_pwm(18)[0]
            elapsed = clock.now - t0
            assert (elapsed - FADE_STEP_S * 1.01) * 0.4 <= level <= elapsed * 0.4 + 1e-9
        for _ in range(60):
            clock.advance(FADE_STEP_S)
        assert board.hardware.line_pwm(18)[0] == pytest.approx(0.8)
        assert board.view("lamp").fade_until is None and len(seen) == 1  # steps not committed


async def test_a_later_command_cancels_the_fade(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, PINS, clock=clock) as board:
        await board.set_level("lamp", 1.0, USER, fade_ms=1000)
        clock.advance(0.5)
        clock.advance(FADE_STEP_S * 1.5)
        halfway = board.hardware.line_pwm(18)[0]
        assert 0.4 < halfway < 0.6
        view = await board.set_level("lamp", 0.1, USER)
        assert (view.level, view.fade_until) == (0.1, None)
        for _ in range(60):
            clock.advance(FADE_STEP_S)
        assert board.hardware.line_pwm(18)[0] == pytest.approx(0.1)  # no fade step after it
        row = board.store.history(pins=[18], limit=1)[0]
        assert (row.old_level, row.new_level) == (1.0, 0.1)


async def test_a_command_that_changes_nothing_still_ends_the_fade_at_its_target(
        tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, PINS, clock=clock) as board:
        await board.set_level("lamp", 1.0, USER, fade_ms=1000)
        clock.advance(0.3)
        await board.command("lamp", "on", USER)  # on at 1.0 is where it was going
        assert board.hardware.line_pwm(18)[0] == pytest.approx(1.0)
        assert board.view("lamp").fade_until is None


async def test_fade_ms_makes_on_and_off_fade(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, PINS, clock=clock) as board:
        view = await board.command("fan", "on", USER)
        assert view.level == 1.0 and view.fade_until is not None
        assert board.hardware.line_pwm(19)[0] == 0.0
        for _ in range(60):
            clock.advance(FADE_STEP_S)
        assert board.hardware.line_pwm(19)[0] == pytest.approx(1.0)


# -- interlocks, pulses, auto-off -------------------------------------------------------------


INTERLOCKED = PINS + """
[[interlocks]]
pins = ["lamp", "fan", 23]
"""


async def test_interlocked_levels_are_never_two_above_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, INTERLOCKED, clock=clock) as board:
        await board.set_level("lamp", 0.5, USER)
        view = await board.set_level("fan", 0.6, USER)
        assert board.view("lamp").level == 0.0 and view.level == 0.6
        assert board.hardware.line_pwm(18)[0] == 0.0
        row = board.store.history(pins=[18], limit=1)[0]
        assert (row.actor.cause, row.old_level, row.new_level) == ("interlock", 0.5, 0.0)
        await board.command(23, "on", USER)
        assert board.view("fan").level == 0.0 and board.hardware.line_pwm(19)[0] == 0.0
        await board.set_level("lamp", 0.0, USER)  # zero is off: the relay stays on
        assert board.view(23).state is True


async def test_a_partner_fading_out_is_out_before_its_partner_comes_on(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, INTERLOCKED, clock=clock) as board:
        await board.set_level("lamp", 1.0, USER)
        await board.set_level("lamp", 0.0, USER, fade_ms=1000)
        clock.advance(0.2)
        assert board.hardware.line_pwm(18)[0] > 0.5  # still fading down
        await board.command(23, "on", USER)
        assert board.hardware.line_pwm(18)[0] == 0.0


async def test_a_pulse_on_a_pwm_pin_pulses_at_its_remembered_level(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, PINS, clock=clock) as board:
        await board.set_level("lamp", 0.3, USER)
        await board.command("lamp", "off", USER)
        view = await board.pulse("lamp", 500, USER)
        assert view.level == 0.3 and view.pulse_until is not None
        clock.advance(0.5)
        await settle()
        assert board.view("lamp").level == 0.0
        assert board.store.history(pins=[18], limit=1)[0].actor.cause == "pulse"


async def test_auto_off_ends_at_level_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    text = PINS.replace('id = "lamp"\nmode = "pwm"',
                        'id = "lamp"\nmode = "pwm"\nauto_off_ms = 1000')
    async with running_board(tmp_path, text, clock=clock) as board:
        await board.set_level("lamp", 0.4, USER)
        clock.advance(1.0)
        await settle()
        assert board.view("lamp").level == 0.0 and board.hardware.line_pwm(18)[0] == 0.0


# -- the store --------------------------------------------------------------------------------


def test_a_database_from_before_levels_is_migrated_and_its_rows_stay_readable(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    path = tmp_path / "pinpanel.sqlite3"
    store.close()
    now = utc_now()
    conn = sqlite3.connect(path)
    # Back to schema 2: the table as it was, with one old row in it.
    conn.executescript(
        "DROP TABLE history; DROP TABLE pin_state; "
        "DROP TABLE automation; DROP TABLE automation_audit; DROP TABLE outbox; "
        "ALTER TABLE tokens DROP COLUMN grants; ALTER TABLE tokens DROP COLUMN expires_at; "
        "ALTER TABLE tokens DROP COLUMN kind; "
        "CREATE TABLE pin_state (pin INTEGER PRIMARY KEY, state INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, changed_at TEXT NOT NULL, actor TEXT NOT NULL, "
        "cause TEXT NOT NULL); "
        "CREATE TABLE history (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, pin INTEGER NOT "
        "NULL, pin_id TEXT NOT NULL, old INTEGER, new INTEGER NOT NULL, cause TEXT NOT NULL, "
        "actor TEXT NOT NULL, client TEXT); "
        "PRAGMA user_version = 2;")
    conn.execute("INSERT INTO history VALUES (1, ?, 18, 'gpio18', 0, 1, 'api', 'tester', "
                 "NULL)", (now,))
    conn.execute("INSERT INTO pin_state VALUES (18, 1, 1, ?, 'tester', 'api')", (now,))
    conn.commit()
    conn.close()
    store = Store.open(tmp_path)
    try:
        row = store.history(limit=1)[0]
        assert (row.seq, row.new, row.new_level) == (1, True, None)
        assert "old_level" not in row.as_json()
        assert store.last_changes()[18].new is True
    finally:
        store.close()


async def test_a_scene_turns_a_pwm_pin_on_at_its_remembered_level(tmp_path: Path) -> None:
    async with running_board(tmp_path, INTERLOCKED) as board:
        await board.set_level("lamp", 0.45, USER)
        await board.command("lamp", "off", USER)
        await board.set_level("fan", 0.5, USER)
        applied = await board.apply({"lamp": True, "blind": False}, USER)
        assert [v.level for v in applied.pins if v.pin == 18] == [0.45]
        assert board.view("fan").level == 0.0  # its interlock partner went off
        assert len({c.seq for c in applied.changes}) == len(applied.changes) == 2
