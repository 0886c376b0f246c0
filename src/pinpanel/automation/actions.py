"""What a schedule (or a rule) does to the pins, always through the board's one path.

A pin action on several pins is one :meth:`Board.apply` (one commit), as a scene is; a pulse
is one :meth:`Board.pulse` per pin (each has its own timer). The actor names who decided it
(``schedule:<id>``, ``rule:<id>``) and the cause says what kind of thing that was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pinpanel.automation import groups
from pinpanel.board import Board
from pinpanel.changes import Actor
from pinpanel.config import Config


async def run_pins(board: Board, pins: Sequence[int], action: str, ms: int, actor: Actor, *,
                   level: float | None = None, fade_ms: int = 0) -> None:
    """on, off or toggle (one commit for all the pins), or pulse or level (each pin its
    own: a pulse has its own timer, a fade its own steps)."""
    if action == "level":
        await asyncio.gather(*(board.set_level(bcm, level, actor, fade_ms=fade_ms)
                               for bcm in pins))
    elif action == "pulse":
        await asyncio.gather(*(board.pulse(bcm, ms or None, actor) for bcm in pins))
    elif action == "toggle":
        await board.apply({bcm: not board.view(bcm).state for bcm in pins}, actor)
    else:
        await board.apply(dict.fromkeys(pins, action == "on"), actor)


async def run_target(board: Board, *, pins: Sequence[int] = (), group: str = "",
                     scene: str = "", action: str = "on", ms: int = 0, actor: Actor,
                     level: float | None = None, fade_ms: int = 0) -> None:
    """A schedule's or rule's target: a scene, a group, or pins."""
    if scene:
        await groups.apply_scene(board, scene, actor)
    elif group:
        await groups.switch_group(board, group, action, actor)
    else:
        await run_pins(board, pins, action, ms, actor, level=level, fade_ms=fade_ms)


def states_left(config: Config, *, pins: Sequence[int] = (), group: str = "", scene: str = "",
                action: str = "on", level: float | None = None) -> dict[int, bool | float]:
    """The pin states the target leaves behind (on/off, or a pwm level as a float); empty
    for a toggle or a pulse (no state of their own to restore after a power cut)."""
    if scene:
        found = config.scene(scene)
        return {bcm: bool(state) for bcm, state in found.set} if found else {}
    if action not in ("on", "off", "level") or (action == "level" and level is None):
        return {}
    if group:
        chosen = config.group(group)
        pins = chosen.pins if chosen else ()
    if action == "level":
        assert level is not None
        return dict.fromkeys(pins, float(level))
    return dict.fromkeys(pins, action == "on")
