"""A board over the simulated pins and a temporary store, for core unit tests."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

from pinpanel.board import Board
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
