"""The running server's config file: saved from the page or the API, re-read on SIGHUP.

One object owns the path the server was started with (or, started without one, the file its
first save writes in the data directory) and the one order every change takes: read the
file, merge the edit (:mod:`pinpanel.config_file`), validate with the start-up loader, write
atomically, then hand the new :class:`~pinpanel.config.Config` to
:meth:`Board.reconfigure <pinpanel.board.Board.reconfigure>` as a diff. A reload (SIGHUP,
``pinpanel reload``) is the same without the edit. A file that fails to load changes
nothing: the running setup stays, the caller gets every problem. Saves and reloads run one
at a time.

The command-line flags the server was started with (``--port``...) stay applied over every
new file, as they were over the first. Sections other than the pins' (server, mqtt...) take
effect at the next start; :class:`Outcome` names the ones that differ. Each pin added,
re-claimed, edited or removed gets an audit row (the store's automation audit, kind
``pin``) naming who did it; the state changes themselves are in the history as any change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pinpanel import config_file
from pinpanel.board import Board, Reconfigured
from pinpanel.changes import Actor
from pinpanel.config import Config, load, with_overrides
from pinpanel.errors import ConfigError
from pinpanel.store import Store

log = logging.getLogger(__name__)

#: Config fields the board applies live; any other differing section waits for a restart.
LIVE_FIELDS = frozenset({"pins", "interlocks", "groups", "scenes", "source"})


@dataclass(frozen=True)
class Outcome:
    """A save or reload that went through: the file, what the board did, what waits."""

    path: Path
    applied: Reconfigured
    #: Sections that differ from the running ones but apply only at the next start.
    restart_needed: tuple[str, ...]
    #: True when this save wrote the file for the first time (no config file before).
    created: bool = False


class LiveConfig:
    """The config file of a running server and the one way a new config reaches the board."""

    def __init__(self, board: Board, path: Path | None, data_dir: Path, *,
                 overrides: Mapping[str, Any] | None = None,
                 store: Store | None = None) -> None:
        self.board = board
        #: Where each applied pin edit gets an audit row (who, which pin, how, which file).
        self.store = store
        self.given = path is not None
        self.path = path if path is not None else config_file.default_path(data_dir)
        self.overrides = dict(overrides or {})
        self._lock = asyncio.Lock()
        #: Called with each config applied (the runtime points the adapters at it).
        self.listeners: list[Callable[[Config], None]] = []

    @property
    def config(self) -> Config:
        return self.board.config

    async def save(self, edit: config_file.Edit, actor: Actor) -> Outcome:
        """Merge ``edit`` into the file, validate, write, apply; ConfigError changes nothing."""
        async with self._lock:
            document = await asyncio.to_thread(config_file.read_document, self.path)
            merged = config_file.merged(document, edit)
            config = self._effective(config_file.validate(merged, str(self.path)))
            created = not await asyncio.to_thread(self.path.exists)
            await asyncio.to_thread(config_file.write_atomic, self.path, merged.as_string())
            if created:
                log.info("config file written: %s (pinpanel reads it on the next start)",
                         self.path)
            else:
                log.info("config file saved: %s (previous version in %s.bak)", self.path,
                         self.path.name)
            return await self._apply(config, actor, created)

    async def reload(self, actor: Actor) -> Outcome:
        """Read the file again and apply it; a file that fails to load changes nothing."""
        async with self._lock:
            try:
                config = self._effective(await asyncio.to_thread(load, self.path))
            except ConfigError as exc:
                log.error("reload refused, the running setup stays: %s", exc)
                raise
            return await self._apply(config, actor, False)

    def _effective(self, config: Config) -> Config:
        return with_overrides(config, **self.overrides)

    async def _apply(self, config: Config, actor: Actor, created: bool) -> Outcome:
        running = self.board.config
        waiting = tuple(f.name for f in fields(Config) if f.name not in LIVE_FIELDS
                        and getattr(config, f.name) != getattr(running, f.name))
        applied = await self.board.reconfigure(config, running.gpio.on_exit, actor)
        if self.store is not None:
            rows = [self.store.audit_automation("pin", str(bcm), action, actor.name,
                                                str(self.path))
                    for action, pins in (("added", applied.added),
                                         ("reclaimed", applied.reclaimed),
                                         ("edited", applied.edited),
                                         ("removed", applied.removed)) for bcm in pins]
            if rows:
                await asyncio.gather(*rows)
        if waiting:
            log.warning("changed in %s but applied only at the next start: %s", self.path,
                        ", ".join(waiting))
        for listener in self.listeners:
            listener(self.board.config)
        return Outcome(self.path, applied, waiting, created)
