"""The audit log, for scripts and for people: ``GET /api/v1/history`` and the page's timelines.

The API pages newest first with a cursor (the ``seq`` the next page starts below), so a
client walking back through a busy log never sees a row twice or skips one, even while new
changes arrive. Every parameter is checked; a bad one is a 422 naming it, never a 500.

The page shows, per pin, when it was on over the last 24 hours (an inline SVG drawn on the
server, so it needs no script) and its last change ("On since 14:02, by phone"). The page is
the most requested URL, so its history is read in one bounded query and kept until the next
committed change or the next minute, whichever comes first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.auth import SEE
from pinpanel.board import Board
from pinpanel.changes import Committed, format_time, parse_time
from pinpanel.store import Store
from pinpanel.web import openapi
from pinpanel.web.context import board_of, require, store_of, visible_pins
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PARAMETERS = ("pin", "since", "until", "limit", "cursor")
MAX_CURSOR = 2**63 - 1
#: The page's timeline: how far back, and how many changes per pin it draws at most.
WINDOW_S = 24 * 3600
PER_PIN = 240
#: SVG user units across the timeline: one per minute of the day.
WIDTH = 1440
#: Narrower "on" spans are widened to this, so a short pulse is still visible.
MIN_WIDTH = 4.0
RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
#: Causes worth naming after the actor in the page's "last change" line.
NOTABLE_CAUSES = ("startup", "shutdown", "interlock")


# -- the API ---------------------------------------------------------------------------------


def parse_rfc3339(name: str, text: str) -> str:
    """An RFC 3339 date-time (with its offset) -> the store's UTC form; 422 otherwise."""
    match = RFC3339.match(text.strip())
    if match is None:
        hint = " (a + in a URL must be written %2B)" if " " in text.strip() else ""
        raise Problem(422, f"{name} must be an RFC 3339 date-time with an offset, such as "
                           f"2026-11-26T14:02:00Z, got {text!r}{hint}")
    date, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]  # Python parses at most microseconds
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{fraction}{offset}")
    except ValueError:
        raise Problem(422, f"{name} is not a valid date-time: {text!r}") from None
    return format_time(moment)


def _single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Problem(422, f"{name} may be given once, got {len(values)} values")
    return values[0] if values else None


def _integer(name: str, text: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdecimal()) or not low <= int(text) <= high:
        raise Problem(422, f"{name} must be an integer from {low} to {high}, got {text!r}")
    return int(text)


def history_query(request: Request) -> dict[str, Any]:
    """The request's filters, checked: unknown or repeated parameters are refused too."""
    unknown = sorted(set(request.query_params.keys()) - set(PARAMETERS))
    if unknown:
        raise Problem(422, f"unknown parameter {unknown[0]!r} (expected {', '.join(PARAMETERS)})")
    board = board_of(request)
    pins: list[int] = []
    for ref in request.query_params.getlist("pin"):
        if not ref.strip():
            raise Problem(422, "pin must be a BCM number or a pin id, got an empty value")
        bcm = board.resolve(ref).pin  # unknown pin: 404
        require(request, SEE, bcm)  # a guest's other pins: 403
        if bcm not in pins:
            pins.append(bcm)
    limit_text = _single(request, "limit")
    limit = DEFAULT_LIMIT if limit_text is None else _integer("limit", limit_text, 1, MAX_LIMIT)
    cursor_text = _single(request, "cursor")
    cursor = None if cursor_text is None else _integer("cursor", cursor_text, 1, MAX_CURSOR)
    since_text, until_text = _single(request, "since"), _single(request, "until")
    since = None if since_text is None else parse_rfc3339("since", since_text)
    until = None if until_text is None else parse_rfc3339("until", until_text)
    # since >= until is an empty range, answered with an empty page like any other range
    # with nothing in it (no constraint between two parameters the document cannot state).
    shown = visible_pins(request)
    if shown is not None and not pins:  # a guest's history is of its own pins only
        pins = sorted(shown) or [-1]  # no pin at all: a pin number no row has
    return {"pins": pins, "since": since, "until": until, "before_seq": cursor, "limit": limit}


async def history_api(request: Request) -> Response:
    """``{"items": [...], "next": cursor or null}``, newest first."""
    query = history_query(request)
    limit = query.pop("limit")
    store = store_of(request)
    # One more row than asked tells whether another page exists; the read runs off the loop.
    rows = await run_in_threadpool(lambda: store.history(**query, limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse({"items": [row.as_json() for row in rows],
                         "next": str(rows[-1].seq) if more else None})


# -- the page: timelines and the last change -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeline:
    """One pin's last 24 hours as SVG spans (x, width) in minutes, 0 = 24 hours ago."""

    on: tuple[tuple[float, float], ...]
    unknown: tuple[tuple[float, float], ...]
    changes: int
    on_seconds: float
    #: What it was drawn from, so the page's script can redraw it as changes arrive and
    #: time passes (static/live.js): the window's end (epoch s), the state at its start
    #: (None: unknown) and each change in it as (epoch s, new state).
    end: float = 0.0
    first: bool | None = None
    flips: tuple[tuple[float, bool], ...] = ()

    @property
    def label(self) -> str:
        if not self.changes and not self.on_seconds:
            return "off for the whole of the last 24 hours" if not self.unknown else (
                "no record for the last 24 hours")
        changes = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        return f"{changes} in the last 24 hours; on for {duration(self.on_seconds)} in total"


def duration(seconds: float) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``3 h 20 min``."""
    whole = round(seconds)
    if 0 < seconds < 1:
        return "under 1 s"
    if whole < 60:
        return f"{whole} s"
    hours, minutes = divmod(whole // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _merge(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def build_timeline(rows: Sequence[Committed], current: Committed | None, now: float,
                   *, window_s: float = WINDOW_S, truncated: bool = False) -> Timeline:
    """Turn a pin's changes in the window (oldest first) into spans to draw.

    The state before the first change is that change's ``old``; with no change in the
    window it is the pin's current committed state. When more changes happened than were
    read (``truncated``), or nothing was ever recorded, the stretch before the first known
    change is drawn as unknown rather than guessed. Times are clamped into the window, so a
    clock that jumped does not draw outside it.
    """
    start = now - window_s
    if rows:
        state: bool | None = None if truncated else rows[0].old
    else:
        state = current.new if current is not None else None
    first, flips = state, []
    t = start
    on: list[tuple[float, float]] = []
    unknown: list[tuple[float, float]] = []
    for row in [*rows, None]:
        end = now if row is None else min(max(parse_time(row.at).timestamp(), t), now)
        if row is not None:
            flips.append((end, row.new))
        if end > t:
            if state is None:
                unknown.append((t, end))
            elif state:
                on.append((t, end))
        t = end
        if row is not None:
            state = row.new
    scale = WIDTH / window_s

    def to_units(spans: list[tuple[float, float]], minimum: float) -> tuple[
            tuple[float, float], ...]:
        out = []
        for a, b in _merge(spans):
            x, width = (a - start) * scale, max((b - a) * scale, minimum)
            out.append((round(min(x, WIDTH - width), 2), round(width, 2)))
        return tuple(out)

    return Timeline(on=to_units(on, MIN_WIDTH), unknown=to_units(unknown, 0.0),
                    changes=len(rows), on_seconds=sum(b - a for a, b in on),
                    end=now, first=first, flips=tuple(flips))


def short_time(moment: datetime, now: datetime) -> str:
    """A moment as a person reads it on the page, in the Pi's local time.

    ``14:02`` today, ``Tue 14:02`` this past week, ``3 Nov 14:02`` this year, else with
    the year. The page is drawn on the server, so the server's time zone is the one shown.
    """
    local, today = moment.astimezone(), now.astimezone()
    clock = local.strftime("%H:%M")
    if local.date() == today.date():
        return clock
    if timedelta(0) < today - local < timedelta(days=6):
        return f"{local.strftime('%a')} {clock}"
    day = f"{local.day} {local.strftime('%b')}"
    if local.year == today.year:
        return f"{day} {clock}"
    return f"{day} {local.year} {clock}"


@dataclass(frozen=True, slots=True)
class LastChange:
    """The page's "On since 14:02, by phone" line for one pin."""

    state: bool
    at: str
    when: str
    actor: str
    cause: str

    @property
    def text(self) -> str:
        note = f" ({self.cause})" if self.cause in NOTABLE_CAUSES else ""
        return f"{'On' if self.state else 'Off'} since {self.when}, by {self.actor}{note}"


def last_change(row: Committed | None, now: datetime) -> LastChange | None:
    if row is None:
        return None
    return LastChange(row.new, row.at, short_time(parse_time(row.at), now),
                      row.actor.name, row.actor.cause)


class TimelineCache:
    """The page's timelines, kept until the next committed change or the next minute.

    A page view then costs no database read at all when nothing changed, which is most of
    the time; after a change, one bounded query recomputes every pin's timeline.
    """

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._value: dict[int, Timeline] = {}

    async def get(self, board: Board, store: Store) -> dict[int, Timeline]:
        now = time.time()
        key = (board.hub.last_seq, int(now // 60))
        if key != self._key:
            meta = board.last_changes()  # on the loop, where the board changes it
            self._value = await run_in_threadpool(compute_timelines, board, store, meta, now)
            self._key = key
        return self._value


def compute_timelines(board: Board, store: Store, meta: dict[int, Committed], now: float,
                      ) -> dict[int, Timeline]:
    """Every pin's timeline from one query (at most :data:`PER_PIN` rows per pin)."""
    pins = [p.pin for p in board.config.pins]
    since = format_time(datetime.fromtimestamp(now - WINDOW_S, UTC))
    recent = store.recent(pins, since, PER_PIN)
    return {bcm: build_timeline(recent[bcm], meta.get(bcm), now,
                                truncated=len(recent[bcm]) >= PER_PIN) for bcm in pins}


async def page_history(request: Request) -> dict[str, Any]:
    """What ``index.html`` needs for its timelines and last-change lines."""
    board = board_of(request)
    cache: TimelineCache = request.app.state.timelines
    now = datetime.now(UTC)
    return {
        "timelines": await cache.get(board, store_of(request)),
        "last_changes": {bcm: last_change(row, now)
                         for bcm, row in board.last_changes().items()},
        "timeline_width": WIDTH,
        "notable_causes": NOTABLE_CAUSES,
        # The page's times are the server's local time; the script formats new ones alike.
        "utc_offset_min": round(now.astimezone().utcoffset().total_seconds() / 60),  # type: ignore[union-attr]
    }


SCHEMAS: dict[str, Any] = {
    "HistoryItem": {
        "type": "object",
        "required": ["seq", "at", "pin", "id", "old", "new", "cause", "actor", "client"],
        "properties": {
            "seq": {"type": "integer", "description": "Sequence number (gapless, never reused)"},
            "at": {"type": "string", "format": "date-time", "description": "UTC, milliseconds"},
            "pin": {"type": "integer", "description": "BCM number"},
            "id": {"type": "string"},
            "old": {"type": ["boolean", "null"],
                    "description": "State before; null for a pin's first record"},
            "new": {"type": "boolean"},
            "cause": {"type": "string", "description": "api, form, pulse, input, interlock, "
                                                        "startup, shutdown, mqtt..."},
            "actor": {"type": "string", "description": "Token or user name, anonymous, mqtt, "
                                                        "pulse, input or system"},
            "client": {"type": ["string", "null"], "description": "Client address"},
        },
    },
    "HistoryPage": {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "items": openapi.ref("HistoryItem"),
                  "description": "Newest first"},
        "next": {"type": ["string", "null"],
                 "description": "Pass as cursor for the next (older) page; null on the last"}}},
}
#: The document's words for what :func:`history_query` accepts, parameter by parameter.
PARAMETER_DOCS = [
    {"name": "pin", "in": "query", "required": False, "explode": True,
     "description": "BCM number or pin id; repeat for several pins",
     "schema": {"type": "array", "items": {"type": "string", "pattern": r"\S"}}},
    {"name": "since", "in": "query", "required": False,
     "description": "RFC 3339 date-time with offset (inclusive)",
     "schema": {"type": "string", "format": "date-time"}},
    {"name": "until", "in": "query", "required": False,
     "description": "RFC 3339 date-time with offset (exclusive)",
     "schema": {"type": "string", "format": "date-time"}},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "The next value of the previous page",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CURSOR}},
]


def routes() -> list[ApiRoute]:
    return [ApiRoute(
        "/api/v1/history", history_api, methods=["GET"], name="history", policy="read",
        pin_scoped=True,
        schemas=SCHEMAS, openapi={
            "summary": "Audit history", "tags": ["history"],
            "description": "Committed changes, newest first, paged with a cursor. Filters "
                           "combine; since is inclusive, until exclusive (since at or after "
                           "until selects nothing). Unknown or repeated parameters are "
                           "refused (422).",
            "parameters": PARAMETER_DOCS,
            "responses": {
                "200": openapi.json_response(openapi.ref("HistoryPage"), "One page of history"),
                **openapi.problems({404: "Unknown pin", 422: "A bad parameter (named)"},
                                   404, 422)}})]
