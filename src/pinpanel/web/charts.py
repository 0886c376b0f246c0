"""Sensor charts as SVG drawn on the server: a page that works without JavaScript.

One chart is one reading over 24 hours (or 7 / 30 days on demand): the average per bucket as
a line over the min-max band, a few kilobytes of markup with classes only (no inline style
or script, so the page's CSP stays strict). ``static/sensors.js`` extends the line live from
the ``reading`` events using the scale in the ``data-`` attributes, and fetches a fresh chart
from ``/sensors/{sensor}/{reading}/chart.svg`` when a value leaves the drawn scale or time
runs past the right edge.

Charts are cached for a minute per (sensor, reading, range): the page re-renders on every
published reading, the buckets of 5 minutes and more do not change that fast.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response

from pinpanel.sensors.model import Quantity
from pinpanel.store.readings import Bucket, ReadingStore
from pinpanel.web.openapi import problem
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute
from pinpanel.web.sensors import sampler_of

Range = Literal["24h", "7d", "30d"]
#: Range -> (seconds shown, seconds per bucket). 288, 336 and 240 points: a few kilobytes.
RANGES: dict[str, tuple[int, int]] = {"24h": (86_400, 300), "7d": (7 * 86_400, 1800),
                                      "30d": (30 * 86_400, 10_800)}
LABELS = {"24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}
WIDTH, HEIGHT = 600, 120
#: Room left at the right edge for live points before the chart is fetched again.
ROOM = 0.05
CACHE_S = 60


@dataclass(frozen=True)
class Scale:
    since: float
    until: float
    lo: float
    hi: float

    def x(self, at: float) -> float:
        return round((at - self.since) / (self.until - self.since) * WIDTH, 1)

    def y(self, value: float) -> float:
        return round(HEIGHT - (value - self.lo) / (self.hi - self.lo) * HEIGHT, 1)


def _scale(buckets: list[Bucket], since: float, until: float) -> Scale:
    if not buckets:
        return Scale(since, until, 0.0, 1.0)
    lo, hi = min(b.min for b in buckets), max(b.max for b in buckets)
    margin = (hi - lo) * 0.1 or max(abs(hi) * 0.05, 0.5)
    return Scale(since, until, lo - margin, hi + margin)


def draw(sensor_id: str, quantity: Quantity, buckets: list[Bucket], since: float,
         until: float, step: int, range_name: str, label: str) -> Markup:
    """The chart's SVG markup (avg line, min-max band, scale labels, gaps left as gaps)."""
    scale = _scale(buckets, since, until)
    line: list[str] = []
    band_runs: list[list[Bucket]] = [[]]
    previous: float | None = None
    for bucket in buckets:
        x, y = scale.x(bucket.at + step / 2), scale.y(bucket.avg)
        gap = previous is not None and bucket.at - previous > 2 * step
        if gap:
            band_runs.append([])
        line.append(f"{'M' if previous is None or gap else 'L'}{x} {y}")
        band_runs[-1].append(bucket)
        previous = bucket.at
    bands = []
    for run in band_runs:
        if not run:
            continue
        top = [f"{scale.x(b.at + step / 2)},{scale.y(b.max)}" for b in run]
        bottom = [f"{scale.x(b.at + step / 2)},{scale.y(b.min)}" for b in reversed(run)]
        bands.append(f'<polygon class="chart-band" points="{" ".join(top + bottom)}"/>')
    unit = escape(quantity.unit)
    digits = min(quantity.precision, 2)
    title = escape(label)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" '
        f'role="img" aria-label="{title}" data-sensor="{escape(sensor_id)}" '
        f'data-reading="{escape(quantity.name)}" data-range="{range_name}" '
        f'data-since="{since:.0f}" data-until="{until:.0f}" data-lo="{scale.lo:.6g}" '
        f'data-hi="{scale.hi:.6g}" data-width="{WIDTH}" data-height="{HEIGHT}">',
        f"<title>{title}</title>",
        f'<rect class="chart-bg" x="0" y="0" width="{WIDTH}" height="{HEIGHT}"/>',
        *bands,
        f'<path class="chart-line" d="{" ".join(line)}"/>',
    ]
    if buckets:
        parts.append(f'<text class="chart-label" x="4" y="12">{scale.hi:.{digits}f} {unit}'
                     "</text>")
        parts.append(f'<text class="chart-label" x="4" y="{HEIGHT - 4}">'
                     f"{scale.lo:.{digits}f} {unit}</text>")
    else:
        parts.append(f'<text class="chart-label" x="{WIDTH / 2}" y="{HEIGHT / 2}" '
                     'text-anchor="middle">no readings yet</text>')
    parts.append("</svg>")
    # Every value above is a number or escaped: the markup is safe to place as it is.
    return Markup("".join(parts))  # noqa: S704


class ChartCache:
    """Charts by (sensor, reading, range), each kept :data:`CACHE_S` seconds."""

    def __init__(self) -> None:
        self._charts: dict[tuple[str, str, str], tuple[float, Markup]] = {}

    async def chart(self, store: ReadingStore, sensor_id: str, sensor_name: str,
                    quantity: Quantity, range_name: str = "24h") -> Markup:
        key = (sensor_id, quantity.name, range_name)
        now = time.time()
        hit = self._charts.get(key)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        shown, step = RANGES[range_name]
        since = (now - shown) // step * step
        until = now + shown * ROOM
        _, buckets = await asyncio.to_thread(store.buckets, sensor_id, quantity.name, since,
                                             until, step)
        label = f"{sensor_name} {quantity.name}, {LABELS[range_name]}"
        markup = draw(sensor_id, quantity, buckets, since, until, step, range_name, label)
        if len(self._charts) > 256:
            self._charts.clear()
        self._charts[key] = (now, markup)
        return markup


def reading_text(value: float | None, precision: int) -> str:
    return "" if value is None else f"{value:.{precision}f}"


async def page_sensors(request: Request) -> list[dict[str, Any]]:
    """The page's sensors: each reading's value as text, and its 24-hour chart."""
    sampler = sampler_of(request)
    if sampler is None:
        return []
    cache = cache_of(request)
    shown: list[dict[str, Any]] = []
    for state in sampler.states.values():
        latest = state.latest
        values = latest.values if latest is not None else {}
        readings = []
        for q in state.quantities:
            chart = (await cache.chart(sampler.store, state.config.id, state.config.name, q)
                     if sampler.store is not None else Markup(""))
            readings.append({"name": q.name, "unit": q.unit, "precision": q.precision,
                             "text": reading_text(values.get(q.name), q.precision),
                             "chart": chart})
        shown.append({"id": state.config.id, "name": state.config.name,
                      "kind": state.config.kind, "readings": readings,
                      "error": latest.error if latest is not None else None,
                      "detail": latest.detail if latest is not None else None,
                      "at": latest.at_text if latest is not None else None,
                      "when": time.strftime("%H:%M:%S", time.localtime(latest.at))
                      if latest is not None else None})
    return shown


def cache_of(request: Request) -> ChartCache:
    cache: ChartCache | None = getattr(request.app.state, "charts", None)
    if cache is None:
        cache = request.app.state.charts = ChartCache()
    return cache


async def chart_svg(request: Request) -> Response:
    """``GET /sensors/{sensor}/{reading}/chart.svg?range=24h|7d|30d``."""
    sampler = sampler_of(request)
    range_name = request.query_params.get("range", "24h")
    if range_name not in RANGES:
        raise Problem(400, f"range must be one of {', '.join(RANGES)}, got {range_name!r}")
    if sampler is None or sampler.store is None:
        raise Problem(404, "no sensors are configured")
    state = sampler.state(request.path_params["sensor"])
    quantity = next((q for q in state.quantities if q.name == request.path_params["reading"]),
                    None)
    if quantity is None:
        raise Problem(404, f"{state.config.id} has no reading "
                           f"{request.path_params['reading']!r}")
    markup = await cache_of(request).chart(sampler.store, state.config.id, state.config.name,
                                           quantity, range_name)
    svg = '<svg xmlns="http://www.w3.org/2000/svg" ' + str(markup)[len("<svg "):]
    return Response(svg, media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=60"})


def routes() -> list[ApiRoute]:
    return [ApiRoute("/sensors/{sensor}/{reading}/chart.svg", chart_svg, methods=["GET"],
                     name="sensor_chart", policy="read", openapi={
                         "summary": "A reading's chart (SVG)", "tags": ["page"],
                         "parameters": [
                             {"name": "sensor", "in": "path", "required": True,
                              "schema": {"type": "string"}},
                             {"name": "reading", "in": "path", "required": True,
                              "schema": {"type": "string"}},
                             {"name": "range", "in": "query", "required": False,
                              "schema": {"type": "string", "enum": list(RANGES)}}],
                         "responses": {"200": {"description": "The chart",
                                               "content": {"image/svg+xml": {}}},
                                       "400": problem("Unknown range"),
                                       "404": problem("Unknown sensor or reading")}})]
