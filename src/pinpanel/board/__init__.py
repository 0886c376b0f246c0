"""The board: the one place a pin changes (see :mod:`pinpanel.board.board`).

This module only re-exports the board's public API, so callers keep writing
``from pinpanel.board import Board, ...`` whatever module a name lives in. The parts,
one concept a module, each building on the one before:

- ``clock``: time as the board sees it (:class:`Clock`, :class:`LoopClock`, :class:`Timer`);
- ``pin``: one pin's record (lock, partners, last commit, timers), actions and their check;
- ``table``: the pins by number and id, their committed views, writing a line;
- ``commit``: one durable commit, then publish; revert the lines if it fails;
- ``timers``: pulses, auto-off timers and fades;
- ``inputs``: input edges through the commit path;
- ``lifecycle``: start-up levels, start, a new config taken live (:class:`Reconfigured`);
- ``apply``: many pins in one commit, for scenes and groups (:class:`Applied`);
- ``board``: :class:`Board` itself, with the one path for an output, and close.
"""

from pinpanel.board.board import (
    ACTIONS,
    SYSTEM,
    Action,
    Applied,
    Board,
    Clock,
    LoopClock,
    PinRef,
    Reconfigured,
    StoreError,
    Timer,
)

__all__ = ["ACTIONS", "SYSTEM", "Action", "Applied", "Board", "Clock", "LoopClock", "PinRef",
           "Reconfigured", "StoreError", "Timer"]
