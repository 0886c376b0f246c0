"""Groups and scenes: several outputs switched by one request, in one commit.

A group is a set of outputs switched alike (``on``, ``off``, ``toggle``); ``all`` is built
in. A scene is a state per output. Both become one :meth:`Board.apply`, so the changes
share one durable commit, one contiguous seq range and one publication: a subscriber never
sees half a scene, and a power cut never leaves half of one on disk.

``toggle`` on a group turns everything off when any of its pins is on, else everything on:
what a wall switch for "the lights" does, and never a mix of flipped states.

The web and MQTT adapters both call these functions, so the two cannot differ.
"""

from __future__ import annotations

from typing import Any, Literal

from pinpanel.board import Applied, Board
from pinpanel.changes import Actor
from pinpanel.config import GroupConfig, SceneConfig
from pinpanel.errors import PinValueError, UnknownNameError

GroupAction = Literal["on", "off", "toggle"]
GROUP_ACTIONS: tuple[GroupAction, ...] = ("on", "off", "toggle")


def group_of(board: Board, group_id: str) -> GroupConfig:
    group = board.config.group(group_id)
    if group is None:
        raise UnknownNameError("group", group_id)
    return group


def scene_of(board: Board, scene_id: str) -> SceneConfig:
    scene = board.config.scene(scene_id)
    if scene is None:
        raise UnknownNameError("scene", scene_id)
    return scene


def group_state(board: Board, group: GroupConfig) -> bool | None:
    """True when every pin is on, False when every pin is off, None when mixed."""
    states = {board.view(bcm).state for bcm in group.pins}
    return states.pop() if len(states) == 1 else None


async def switch_group(board: Board, group_id: str, action: str, actor: Actor) -> Applied:
    """Every pin of the group on, off, or (toggle) off if any is on, else on."""
    group = group_of(board, group_id)
    if action not in GROUP_ACTIONS:
        raise PinValueError(f"unknown action {action!r}; expected on, off or toggle")
    if action == "toggle":
        target = not any(board.view(bcm).state for bcm in group.pins)
    else:
        target = action == "on"
    return await board.apply(dict.fromkeys(group.pins, target), actor)


async def apply_scene(board: Board, scene_id: str, actor: Actor) -> Applied:
    """The scene's states, in one commit."""
    scene = scene_of(board, scene_id)
    return await board.apply(dict(scene.set), actor)


def scene_active(board: Board, scene: SceneConfig) -> bool:
    """Whether every pin of the scene is as the scene sets it now."""
    def held(bcm: int, state: bool | float) -> bool:
        view = board.view(bcm)
        if isinstance(state, bool):
            return view.state == state
        return view.level == state if state else not view.state

    return all(held(bcm, state) for bcm, state in scene.set)


def group_json(board: Board, group: GroupConfig) -> dict[str, Any]:
    return {"id": group.id, "name": group.name,
            "pins": [board.resolve(bcm).id for bcm in group.pins],
            "state": group_state(board, group)}


def scene_json(board: Board, scene: SceneConfig) -> dict[str, Any]:
    return {"id": scene.id, "name": scene.name,
            "set": {board.resolve(bcm).id: ("on" if state else "off") if isinstance(state, bool)
                    else state for bcm, state in scene.set},
            "active": scene_active(board, scene)}


def applied_json(applied: Applied) -> dict[str, Any]:
    """A group's or scene's answer: the pins as published and the commit's seq range."""
    seqs = [c.seq for c in applied.changes]
    return {"pins": [v.as_json() for v in applied.pins], "changes": len(seqs),
            "seq": {"first": seqs[0], "last": seqs[-1]} if seqs else None}
