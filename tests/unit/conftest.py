"""A board over the simulated pins and a temporary store, for core unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from pinpanel.board import Board
from pinpanel.changes import ChangeRecord, Committed
from pinpanel.config import Config, parse
from pinpanel.events import EventHub
from pinpanel.hardware import Hardware
from pinpanel.store import Store
from tests.support import FakeClock


def config_of(text: str = "") -> Config:
    return parse(tomllib.loads(text), "test")


@contextlib.asynccontextmanager
async def running_board(data_dir: Path, text: str = "", clock: FakeClock | None = None,
                        on_exit: str = "keep") -> AsyncIterator[Board]:
    config = config_of(text)
    store = Store.open(data_dir)
    hardware = Hardware.open("simulated")
    board = Board(config, hardware, store, EventHub(), clock=clock or FakeClock())
    await board.start()
    try:
        yield board
    finally:
        await board.close(on_exit)  # type: ignore[arg-type]
        store.close()


async def settle(rounds: int = 20) -> None:
    """Let scheduled callbacks, tasks and the store's commits run."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)


def hold_commits(store: Store) -> asyncio.Event:
    """Hold back the store's answers until the returned event is set.

    Each commit still goes to disk at once; only the future the board awaits resolves
    later (in commit order), as it would behind a slow fsync.
    """
    gate = asyncio.Event()
    commit = store.commit
    relays: set[asyncio.Task[None]] = set()

    def held(records: Sequence[ChangeRecord]) -> asyncio.Future[list[Committed]]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Committed]] = loop.create_future()
        stored = commit(records)

        async def relay() -> None:
            try:
                result = await stored
            except Exception as exc:  # noqa: BLE001 - handed on to the waiter
                await gate.wait()
                if not answer.done():
                    answer.set_exception(exc)
                return
            await gate.wait()
            if not answer.done():  # a waiter may have cancelled it
                answer.set_result(result)

        task = loop.create_task(relay())
        relays.add(task)
        task.add_done_callback(relays.discard)
        return answer

    store.commit = held  # type: ignore[method-assign]
    return gate
