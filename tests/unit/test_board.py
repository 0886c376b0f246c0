"""The board core on the simulated pins: the one path, locking, pulses, interlocks, inputs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from pinpanel.board import Action, Board
from pinpanel.changes import Actor, Change, ChangeRecord, Committed
from pinpanel.errors import PinModeError, PinValueError, StoreError, UnknownPinError
from pinpanel.store import Store
from tests.support import FakeClock
from tests.unit.conftest import hold_commits, running_board, settle

USER = Actor("tester", "api", "127.0.0.1")


def collect(board: Board) -> list[Change]:
    seen: list[Change] = []
    board.hub.add_listener(seen.append)
    return seen


async def test_toggle_writes_the_pin_commits_and_publishes(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        seen = collect(board)
        view = await board.command(18, "toggle", USER)
        assert view.state is True
        assert board.hardware.physical_level(18) is True
        assert board.store.last_changes()[18].new is True
        assert [c.seq for c in seen] == [view.seq]
        assert seen[0].committed.actor == USER
        history = board.store.history(pins=[18], limit=1)
        assert (history[0].seq, history[0].old, history[0].new) == (view.seq, False, True)


async def test_a_command_answers_with_the_very_view_it_published(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        seen = collect(board)
        view = await board.command(18, "on", USER)
        assert view is seen[-1].pin and view.seq == seen[-1].seq
        pulsed = await board.pulse(board.resolve("gpio23"), 100, USER)  # taken as resolved
        assert pulsed is seen[-1].pin and pulsed.pulse_until is not None
        same = await board.command(18, "on", USER)  # nothing to change, nothing in flight
        assert (same.state, same.seq) == (True, view.seq) and len(seen) == 2


async def test_a_cancelled_caller_leaves_its_change_committed_and_published(
        tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        seen = collect(board)
        gate = hold_commits(board.store)
        task = asyncio.create_task(board.command(18, "on", USER))
        await settle()  # written and on disk; the answer is held back
        assert board.hardware.read(18) is True and seen == []
        task.cancel()  # the client went away
        gate.set()
        await settle()
        assert task.cancelled()
        assert [c.pin.state for c in seen] == [True]
        assert board.last_changes()[18].seq == seen[0].seq == board.hub.last_seq
        again = await board.command(18, "on", USER)
        assert again.seq == seen[0].seq  # the board knows the change it never answered


async def test_a_pin_is_read_as_committed_while_its_change_is_on_its_way(
        tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        before, last_seq = board.view(18), board.hub.last_seq
        gate = hold_commits(board.store)
        switching = asyncio.create_task(board.command(18, "on", USER))
        await settle()
        assert board.hardware.read(18) is True  # the line is ahead of the store
        assert (board.view(18).state, board.view(18).seq) == (False, before.seq)
        assert before in board.views()
        gate.set()
        done = await switching
        assert board.view(18) == done and (done.state, done.seq) == (True, last_seq + 1)


async def test_on_off_are_idempotent_and_commit_only_changes(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        seen = collect(board)
        await board.command(18, "on", USER)
        again = await board.command("gpio18", "on", USER)
        assert again.state is True and len(seen) == 1
        off = await board.command("18", "off", USER)
        assert off.state is False and len(seen) == 2


async def test_active_low_inverts_the_line_not_the_state(tmp_path: Path) -> None:
    text = "[[pins]]\npin = 17\nactive_low = true\ninitial = 'off'"
    async with running_board(tmp_path, text) as board:
        assert board.view(17).state is False
        assert board.hardware.physical_level(17) is True  # off drives the line high
        view = await board.command(17, "on", USER)
        assert view.state is True and view.active_low is True
        assert board.hardware.physical_level(17) is False


async def test_inputs_cannot_be_switched(tmp_path: Path) -> None:
    text = "[[pins]]\npin = 5\nmode = 'input'"
    async with running_board(tmp_path, text) as board:
        with pytest.raises(PinModeError):
            await board.command(5, "on", USER)
        with pytest.raises(PinModeError):
            await board.pulse(5, 100, USER)


async def test_unknown_pins_and_bad_actions_are_refused(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        for ref in (4, "4", "gpio4", "nope", 99):
            with pytest.raises(UnknownPinError):
                await board.command(ref, "on", USER)
        with pytest.raises(PinValueError):
            await board.command(18, "explode", USER)  # type: ignore[arg-type]
        assert board.hardware.level_history(18) == [False]


async def test_fifty_concurrent_toggles_lose_no_update(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        seen = collect(board)
        start_seq = board.hub.last_seq
        views = await asyncio.gather(*(board.command(18, "toggle", USER) for _ in range(50)))
        assert board.view(18).state is False  # an even count returns it to off
        assert board.store.last_changes()[18].new is False
        assert sorted(v.seq for v in views) == list(range(start_seq + 1, start_seq + 51))
        assert [c.seq for c in seen] == list(range(start_seq + 1, start_seq + 51))
        # each toggle saw the state the previous one left
        assert [c.pin.state for c in seen] == [i % 2 == 0 for i in range(50)]
        assert len(board.hardware.level_history(18)) == 51


async def test_fifty_one_concurrent_toggles_end_on(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        await asyncio.gather(*(board.command(23, "toggle", USER) for _ in range(51)))
        assert board.view(23).state is True
        assert board.store.last_changes()[23].new is True


async def test_pulse_turns_off_after_its_time(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, clock=clock) as board:
        seen = collect(board)
        view = await board.pulse(18, 500, USER)
        assert view.state is True and view.pulse_until is not None
        clock.advance(0.499)
        await settle()
        assert board.view(18).state is True
        clock.advance(0.002)
        await settle()
        assert board.view(18).state is False
        assert board.view(18).pulse_until is None
        assert [(c.pin.state, c.committed.actor.cause, c.committed.actor.name) for c in seen] == [
            (True, "api", "tester"), (False, "pulse", "pulse")]


async def test_pulse_uses_the_pins_default_length(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, "[[pins]]\npin = 6\npulse_ms = 2000", clock) as board:
        await board.pulse(6, None, USER)
        clock.advance(1.9)
        await settle()
        assert board.view(6).state is True
        clock.advance(0.2)
        await settle()
        assert board.view(6).state is False


async def test_a_new_command_cancels_the_pending_turn_off(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, clock=clock) as board:
        await board.pulse(18, 500, USER)
        await board.command(18, "on", USER)
        clock.advance(1)
        await settle()
        assert board.view(18).state is True
        assert clock.pending == 0


async def test_a_new_pulse_restarts_the_timer(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_board(tmp_path, clock=clock) as board:
        await board.pulse(18, 500, USER)
        clock.advance(0.4)
        await board.pulse(18, 500, USER)
        clock.advance(0.4)
        await settle()
        assert board.view(18).state is True
        clock.advance(0.2)
        await settle()
        assert board.view(18).state is False


@pytest.mark.parametrize("ms", [0, -5, 3_600_001])
async def test_absurd_pulses_are_refused(tmp_path: Path, ms: int) -> None:
    async with running_board(tmp_path) as board:
        with pytest.raises(PinValueError):
            await board.pulse(18, ms, USER)
        assert board.view(18).state is False


async def test_auto_off_applies_to_every_path(tmp_path: Path) -> None:
    clock = FakeClock()
    text = "[[pins]]\npin = 12\nauto_off_ms = 1000"
    async with running_board(tmp_path, text, clock) as board:
        await board.command(12, "on", USER)
        clock.advance(1.01)
        await settle()
        assert board.view(12).state is False
        await board.command(12, "toggle", USER)
        clock.advance(1.01)
        await settle()
        assert board.view(12).state is False


INTERLOCK = """
[[pins]]
pin = 20
id = "up"
[[pins]]
pin = 21
id = "down"
[[interlocks]]
pins = ["up", "down"]
"""


async def test_interlock_turns_the_partner_off_first(tmp_path: Path) -> None:
    async with running_board(tmp_path, INTERLOCK) as board:
        seen = collect(board)
        await board.command(20, "on", USER)
        await board.command(21, "on", USER)
        assert (board.view(20).state, board.view(21).state) == (False, True)
        assert [(c.pin.pin, c.pin.state, c.committed.actor.cause) for c in seen] == [
            (20, True, "api"), (20, False, "interlock"), (21, True, "api")]


async def test_two_hundred_concurrent_on_commands_never_leave_both_on(tmp_path: Path) -> None:
    async with running_board(tmp_path, INTERLOCK) as board:
        levels = {20: False, 21: False}
        violations: list[dict[int, bool]] = []
        write = board.hardware.write

        def checked_write(bcm: int, state: bool) -> None:
            write(bcm, state)
            levels[bcm] = board.hardware.physical_level(bcm)
            if levels[20] and levels[21]:
                violations.append(dict(levels))

        board.hardware.write = checked_write  # type: ignore[method-assign]
        commands = [board.command(20 if i % 2 else 21, "on", USER) for i in range(200)]
        await asyncio.gather(*commands)
        assert violations == []
        assert [board.view(20).state, board.view(21).state].count(True) == 1
        # and the simulated pins' own recorded levels agree: replay them in time order
        history_20 = board.hardware.level_history(20)
        history_21 = board.hardware.level_history(21)
        assert len(history_20) + len(history_21) > 200


async def test_simulated_input_press_becomes_an_input_change(tmp_path: Path) -> None:
    text = "[[pins]]\npin = 5\nmode = 'input'\npull = 'down'"
    async with running_board(tmp_path, text) as board:
        seen = collect(board)
        assert board.view(5).state is False
        view = await board.simulate(5, True)
        await settle()
        assert view.state is True
        assert [(c.pin.pin, c.pin.state, c.committed.actor) for c in seen] == [
            (5, True, Actor("input", "input"))]
        await board.simulate(5, False)
        await settle()
        assert [c.pin.state for c in seen] == [True, False]


async def test_active_low_input_reads_pressed_as_on(tmp_path: Path) -> None:
    text = "[[pins]]\npin = 5\nmode = 'input'\npull = 'up'\nactive_low = true"
    async with running_board(tmp_path, text) as board:
        assert board.view(5).state is False  # pulled up, not pressed
        assert (await board.simulate(5, False)).state is True  # pressed to ground


async def test_outputs_cannot_be_simulated(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        with pytest.raises(PinModeError):
            await board.simulate(18, True)


@pytest.mark.parametrize(("initial", "stored", "expected"), [
    ("off", True, False), ("on", False, True), ("restore", True, True),
    ("restore", False, False), ("restore", None, False),
])
async def test_initial_state(tmp_path: Path, initial: str, stored: bool | None,
                             expected: bool) -> None:
    text = f"[[pins]]\npin = 18\ninitial = '{initial}'"
    if stored is not None:
        async with running_board(tmp_path) as board:
            await board.command(18, "on" if stored else "off", USER)
    async with running_board(tmp_path, text) as board:
        assert board.view(18).state is expected
        # claimed directly at that level: the line never passed through another one
        assert board.hardware.level_history(18)[1:] in ([], [expected])
        assert board.store.last_changes()[18].new is expected


@pytest.mark.parametrize(("on_exit", "expected"), [("keep", True), ("off", False)])
async def test_on_exit(tmp_path: Path, on_exit: str, expected: bool) -> None:
    async with running_board(tmp_path, on_exit=on_exit) as board:
        await board.command(18, "on", USER)
        pin = board.hardware._devices[18].pin
    assert pin.state is expected
    assert pin.function == "output"
    if on_exit == "off":
        async with running_board(tmp_path) as board:
            assert board.store.history(pins=[18], limit=1)[0].actor.cause == "shutdown"


async def test_on_exit_release_returns_lines_to_inputs(tmp_path: Path) -> None:
    async with running_board(tmp_path, on_exit="release") as board:
        await board.command(18, "on", USER)
        pin = board.hardware._devices[18].pin
    assert pin.function == "input"


# -- when the durable commit fails (moved from test_store.py) ---------------------------------

FAIL_ON_23 = ("CREATE TRIGGER fail_23 BEFORE INSERT ON history WHEN NEW.pin = 23 "
              "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")


async def test_a_failed_commit_puts_the_pins_back_before_the_caller_hears(tmp_path: Path) -> None:
    text = ("[[pins]]\npin = 18\n[[pins]]\npin = 23\n[[pins]]\npin = 24\n"
            "[[interlocks]]\npins = [18, 23]\n")
    async with running_board(tmp_path, text) as board:
        published: list[int] = []
        board.hub.add_listener(lambda change: published.append(change.seq))
        on = await board.command(18, "on", USER)
        await board.store.write(lambda conn: conn.execute(FAIL_ON_23))
        with pytest.raises(StoreError, match="disk on fire"):
            await board.command(23, "on", USER)  # would switch 18 off first (interlock)
        # Answered only now, with both lines already back as committed.
        assert board.hardware.read(18) is True and board.hardware.read(23) is False
        assert board.store.last_changes()[18].seq == on.seq
        assert published == [on.seq]  # nothing was announced
        await board.store.write(lambda conn: conn.execute("DROP TRIGGER fail_23"))
        again = await board.command(23, "on", USER)
        assert again.seq == on.seq + 2  # 18 off, then 23 on: no gap where the failure was
        assert board.hardware.read(18) is False and board.hardware.read(23) is True


async def test_a_failed_commit_does_not_block_the_next_idempotent_command(
        tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        await board.store.write(lambda conn: conn.execute(FAIL_ON_23))
        with pytest.raises(StoreError):
            await board.command(23, "on", USER)
        view = await board.command(23, "off", USER)  # already off: nothing to commit
        assert view.state is False


async def test_restore_never_brings_two_interlocked_pins_up_together(tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:  # no interlock yet: both on
        await board.command(18, "on", USER)
        last = await board.command(23, "on", USER)
    text = ("[[pins]]\npin = 18\n[[pins]]\npin = 23\n[[interlocks]]\npins = [18, 23]\n")
    async with running_board(tmp_path, text) as board:
        assert board.view(23).state is True  # changed last, so it keeps its state
        assert board.view(18).state is False
        assert board.hardware.level_history(18)[1:] in ([], [False])  # never on, not even once
        row = board.store.history(pins=[18], limit=1)[0]
        assert (row.actor, row.old, row.new) == (Actor("system", "startup"), True, False)
        assert row.seq > last.seq


class ScriptedCommits:
    """The store's commits held back, then answered in order: the first one fails.

    What a slow fsync that then fails looks like to the board: commands keep coming while
    the failing commit is on its way. Later commits go to disk (or fail too, with
    ``broken``); once released, new commits go straight to the store (or fail).
    """

    def __init__(self, store: Store, *, broken: bool) -> None:
        self.commit = store.commit
        self.broken = broken
        self.held: list[tuple[asyncio.Future[list[Committed]],
                              asyncio.Future[list[Committed]] | None]] = []
        self.released = False
        store.commit = self.scripted  # type: ignore[method-assign]

    def scripted(self, records: Sequence[ChangeRecord]) -> asyncio.Future[list[Committed]]:
        fails = self.broken or not self.held
        if self.released:
            if not fails:
                return self.commit(records)
            failed: asyncio.Future[list[Committed]] = asyncio.get_running_loop().create_future()
            failed.set_exception(StoreError("disk on fire"))
            return failed
        answer: asyncio.Future[list[Committed]] = asyncio.get_running_loop().create_future()
        self.held.append((answer, None if fails else self.commit(records)))
        return answer

    async def until(self, count: int) -> None:
        while len(self.held) < count:
            await asyncio.sleep(0)

    async def release(self) -> None:
        self.released = True
        for answer, stored in self.held:
            if stored is None:
                answer.set_exception(StoreError("disk on fire"))
            else:
                answer.set_result(await stored)


@pytest.mark.parametrize("broken", [False, True], ids=["store recovers", "store stays broken"])
async def test_after_a_failed_commit_an_interlocked_pin_and_the_store_agree(
        tmp_path: Path, broken: bool) -> None:
    """18 is on; "23 on" switches it off (interlock) but that commit fails, while 23 has
    gone off and on again behind it. 18 cannot come back on (23 is on), so its off must
    reach the store too: every line ends where its last committed change says."""
    text = ("[[pins]]\npin = 18\n[[pins]]\npin = 23\n[[interlocks]]\npins = [18, 23]\n")
    async with running_board(tmp_path, text) as board:
        await board.command(18, "on", USER)
        script = ScriptedCommits(board.store, broken=broken)
        tasks = []
        actions: tuple[Action, ...] = ("on", "off", "on")
        for count, action in enumerate(actions, start=1):
            tasks.append(asyncio.create_task(board.command(23, action, USER)))
            await script.until(count)
        assert (board.hardware.read(18), board.hardware.read(23)) == (False, True)
        await script.release()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outcomes[0], StoreError)
        await settle()
        lines = {bcm: board.hardware.read(bcm) for bcm in (18, 23)}
        stored = {bcm: change.new for bcm, change in board.store.last_changes().items()}
        assert lines == stored == {view.pin: view.state for view in board.views()}
        assert lines == ({18: True, 23: False} if broken else {18: False, 23: True})
        if not broken:
            row = board.store.history(pins=[18], limit=1)[0]
            assert (row.old, row.new, row.actor.cause) == (True, False, "interlock")
