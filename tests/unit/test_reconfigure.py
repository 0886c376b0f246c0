"""A new config applied live as a diff: untouched pins are not touched at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pinpanel.board import Board
from pinpanel.changes import Actor
from pinpanel.errors import HardwareError, UnknownPinError
from tests.unit.conftest import config_of, running_board

USER = Actor("tester", "api", "127.0.0.1")
RELOAD = Actor("system", "reload")
BEFORE = """
[[pins]]
pin = 17
id = "relay"
active_low = true
[[pins]]
pin = 27
id = "porch"
[[pins]]
pin = 22
id = "fan"
[[pins]]
pin = 5
id = "button"
mode = "input"
"""


def trace(board: Board, *pins: int) -> dict[int, tuple[object, list[bool]]]:
    """Each pin's gpiozero device and every level its line went through."""
    return {bcm: (board.hardware._devices[bcm], board.hardware.level_history(bcm))
            for bcm in pins}


async def test_unchanged_pins_are_not_reclaimed_nor_written(tmp_path: Path) -> None:
    async with running_board(tmp_path, BEFORE) as board:
        await board.command("relay", "on", USER)
        await board.command("porch", "on", USER)
        seq = board.store.last_seq
        before = trace(board, 17, 27, 5)
        after = config_of(BEFORE.replace('id = "fan"', 'id = "fan"\nactive_low = true')
                          .replace('id = "porch"', 'id = "porch"\nname = "Porch light"'))
        done = await board.reconfigure(after, "keep", RELOAD)
        assert (done.reclaimed, done.edited, done.added, done.removed) == ((22,), (27,), (), ())
        # relay and button untouched; porch only renamed: same devices, no new level
        assert trace(board, 17, 27, 5) == before
        assert board.view("porch").name == "Porch light" and board.view("porch").state is True
        # fan re-claimed active-low at its committed state (off): its line goes high
        assert board.hardware.physical_level(22) is True and board.view("fan").state is False
        assert [c.committed.pin for c in done.changes] == []
        assert board.store.last_seq == seq  # nothing to record: every state stayed


async def test_removed_pins_follow_on_exit_and_new_ones_their_initial(tmp_path: Path) -> None:
    async with running_board(tmp_path, BEFORE) as board:
        await board.command("porch", "on", USER)
        after = config_of(BEFORE.replace('[[pins]]\npin = 27\nid = "porch"\n', "")
                          + '[[pins]]\npin = 6\nid = "bell"\ninitial = "on"\n')
        done = await board.reconfigure(after, "off", RELOAD)
        assert done.removed == (27,) and done.added == (6,)
        assert board.hardware.physical_level(6) is True
        assert board.view("bell").state is True
        assert [(c.committed.pin, c.committed.new, c.committed.actor) for c in done.changes] \
            == [(6, True, RELOAD)]
        with pytest.raises(UnknownPinError):
            board.resolve("porch")
        with pytest.raises(HardwareError):
            board.hardware.read(27)


async def test_a_new_interlock_turns_all_but_the_last_changed_off(tmp_path: Path) -> None:
    async with running_board(tmp_path, BEFORE) as board:
        await board.command("porch", "on", USER)
        await board.command("fan", "on", USER)
        untouched = trace(board, 17)
        after = config_of(BEFORE + "[[interlocks]]\npins = [\"porch\", \"fan\"]\n")
        done = await board.reconfigure(after, "keep", RELOAD)
        assert [(c.committed.pin, c.committed.new, c.committed.actor.cause)
                for c in done.changes] == [(27, False, "interlock")]
        assert board.view("fan").state is True and trace(board, 17) == untouched
        await board.command("porch", "on", USER)  # the interlock holds from now on
        assert board.view("fan").state is False


async def test_commands_in_flight_finish_before_the_new_config(tmp_path: Path) -> None:
    async with running_board(tmp_path, BEFORE) as board:
        commands = [asyncio.create_task(board.command("porch", "toggle", USER))
                    for _ in range(5)]
        await asyncio.sleep(0)
        done = await board.reconfigure(config_of(BEFORE.replace("porch", "front")), "keep",
                                       RELOAD)
        views = await asyncio.gather(*commands)
        assert done.edited == (27,)
        assert views[-1].state is True and board.view("front").state is True
        assert board.view("front").seq == board.store.last_seq
