"""Logging set-up: readable text for a terminal, one JSON object a line for journald tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]


class SecondFormatter(logging.Formatter):
    """A formatter that formats a record's time once a second, not once a line.

    Both formats show whole seconds (``datefmt`` given), so the text is the same for every
    line of a second; ``time.localtime`` + ``strftime`` were a tenth of a change line's cost.
    """

    _cached: tuple[int, str, str] = (-1, "", "")  # (second, datefmt, text): one store

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is None:  # milliseconds in it: nothing to share
            return super().formatTime(record, datefmt)
        second, fmt, text = self._cached
        if second != int(record.created) or fmt != datefmt:
            text = super().formatTime(record, datefmt)
            self._cached = (int(record.created), datefmt, text)
        return text


class JsonFormatter(SecondFormatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class GroupHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes a group of lines in one go: one write(2), one flush.

    Why: a board logs one line per committed change, and under load one group commit
    publishes dozens; a write and a flush per line was the largest part of a line's cost.
    A record with ``more=True`` (``extra={"more": True}``, as :mod:`pinpanel.changelog`
    marks every line of a group but the last) is formatted at once and held; the next
    record without it, from any thread, goes out together with what is held, so the order
    is kept and every other line is written the moment it is logged, as before. Should a
    group's last line never come (a filter), the end of the loop's pass, a flush or
    ``logging.shutdown`` at exit writes what is held.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._held_record: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - as StreamHandler: a record that cannot be formatted
            self.handleError(record)
            return
        self._held.append(line)
        self._held_record = record
        if not getattr(record, "more", False):
            self.flush()
        elif len(self._held) == 1:
            with contextlib.suppress(RuntimeError):  # no loop: the group's end writes it
                asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            held, record = self._held, self._held_record
            self._held, self._held_record = [], None
            try:
                if held:
                    self.stream.write("".join(held))
                self.stream.flush()
            except Exception:  # noqa: BLE001 - as StreamHandler: report, never raise
                if record is not None:
                    self.handleError(record)


def setup(level: str = "INFO", fmt: LogFormat = "text") -> None:
    handler = GroupHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(SecondFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                             "%H:%M:%S"))
    # No format here shows the caller's file and line, thread or process: skip collecting
    # them for every record (the logging HOWTO's "Optimization"); one line per change.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in root.handlers:
        old.flush()  # a GroupHandler of an earlier set-up may hold lines
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's per-request lines would wear out an SD card; errors still show.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
