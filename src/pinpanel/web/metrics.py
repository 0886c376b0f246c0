"""``GET /metrics``: the Prometheus text format, written by hand.

Why by hand: prometheus_client would add megabytes of resident memory to a server that
aims to idle under 45 MB on a Pi Zero, and everything here is a handful of dicts. Counting
costs one dict increment per request (in :class:`RequestMetrics`) and per committed change
(in :mod:`pinpanel.telemetry`); the text is built only when someone scrapes.

The route is named ``metrics`` and needs the ``read`` scope, like the pins themselves: a
Prometheus server scrapes with a read-only token (``authorization: credentials: ...``).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinpanel import __version__
from pinpanel.sensors.sampler import Sampler
from pinpanel.telemetry import Telemetry
from pinpanel.web.context import board_of
from pinpanel.web.routing import ApiRoute, RouteTable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
_CONVERTER = re.compile(r"{(\w+):\w+}")
_STARTED = time.time()


class RequestCounts:
    """Requests answered, by (route template, method, status)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}

    def add(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1


def route_label(table: RouteTable, scope: Scope) -> str:
    """The matched route's path template (``/api/v1/pins/{pin}``), never the raw path.

    Raw paths would give every typo its own time series. The match is the one the security
    layer made (kept in the scope), so a request it refused is still counted under the
    route it was meant for, and nothing walks the routes again.
    """
    path = getattr(table.match(scope).route, "path", None)
    return _template(path) if path else UNMATCHED


@functools.lru_cache(maxsize=256)
def _template(path: str) -> str:
    """``/api/v1/pins/{pin}/{action:str}`` -> ``/api/v1/pins/{pin}/{action}``."""
    return _CONVERTER.sub(r"{\1}", path)


class RequestMetrics:
    """Pure ASGI middleware: count each HTTP response by route, method and status."""

    def __init__(self, app: ASGIApp, counts: RequestCounts, table: RouteTable) -> None:
        self.app = app
        self.counts = counts
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = False

        async def counting_send(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start" and not counted:
                counted = True  # at the start, so a long event stream counts at once
                self.counts.add(route_label(self.table, scope), scope["method"],
                                message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            if not counted:
                self.counts.add(route_label(self.table, scope), scope["method"], 500)
            raise


# -- exposition ----------------------------------------------------------------------------------


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() \
        else str(int(value))


class Exposition:
    """Lines of the text format, one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help: str,
               samples: Iterable[tuple[dict[str, Any], float]],
               suffix: str = "") -> None:
        self.lines.append(f"# HELP {name} {help}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:  # noqa: PTH123 - one tiny read per scrape
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def render(request: Request) -> str:
    """The whole exposition for this app's board."""
    board = board_of(request)
    counts: RequestCounts = request.app.state.request_counts
    stats: Telemetry = request.app.state.telemetry
    out = Exposition()
    info = board.hardware.info
    out.family("pinpanel_info", "gauge", "pinpanel's version and GPIO backend (always 1).",
               [({"version": __version__, "backend": info.name,
                  "simulated": str(info.simulated).lower()}, 1)])
    out.family("pinpanel_http_requests_total", "counter",
               "HTTP responses by route template, method and status.",
               [({"route": r, "method": m, "status": s}, n)
                for (r, m, s), n in sorted(counts.counts.items())])
    out.family("pinpanel_pin_changes_total", "counter",
               "Committed pin changes by pin and cause (api, form, mqtt, pulse, input...).",
               [({"pin": p, "id": i, "cause": c}, n)
                for (p, i, c), n in sorted(stats.changes.items())])
    out.family("pinpanel_pin_state", "gauge", "Each configured pin's logical state (1 = on).",
               [({"pin": v.pin, "id": v.id, "name": v.name, "mode": v.mode}, int(v.state))
                for v in board.views()])
    out.family("pinpanel_last_seq", "gauge", "Sequence number of the last committed change.",
               [({}, board.hub.last_seq)])
    out.family("pinpanel_event_stream_clients", "gauge",
               "Event stream subscribers connected now.", [({}, board.hub.subscriber_count)])
    for name, gauge in sorted(stats.gauges.items()):
        out.family(f"pinpanel_{name}", "gauge", gauge.help, [({}, gauge.value)])
    buckets, total, count = stats.commit_seconds.snapshot()
    bounds = [*stats.commit_seconds.buckets, float("inf")]
    name = "pinpanel_commit_duration_seconds"
    out.family(name, "histogram", "Time to commit a batch of changes durably (fsync).",
               [({"le": _number(b)}, c) for b, c in zip(bounds, buckets, strict=True)],
               suffix="_bucket")
    out.lines.append(f"{name}_sum {_number(total)}")
    out.lines.append(f"{name}_count {count}")
    _sensor_families(out, getattr(request.app.state, "sensors", None))
    cpu = os.times()
    out.family("process_resident_memory_bytes", "gauge", "Resident memory of this process.",
               [({}, _resident_bytes())])
    out.family("process_cpu_seconds_total", "counter", "User and system CPU time used.",
               [({}, round(cpu.user + cpu.system, 3))])
    out.family("process_start_time_seconds", "gauge", "Start time since the Unix epoch.",
               [({}, round(_STARTED, 3))])
    return out.text()


def _sensor_families(out: Exposition, sampler: Sampler | None) -> None:
    """Each sensor's latest values (none while its last read failed) and its read errors."""
    if sampler is None:
        return
    states = list(sampler.states.values())
    out.family("pinpanel_sensor_value", "gauge",
               "The latest published value of each sensor reading (absent while it fails).",
               [({"sensor": s.config.id, "reading": name}, value) for s in states
                if s.latest is not None and s.latest.error is None
                for name, value in s.latest.values.items()])
    out.family("pinpanel_sensor_ok", "gauge", "1 while a sensor's last read succeeded.",
               [({"sensor": s.config.id}, int(s.latest is not None and s.latest.error is None))
                for s in states])
    out.family("pinpanel_sensor_reads_total", "counter", "Sensor reads attempted.",
               [({"sensor": s.config.id}, s.reads) for s in states])
    out.family("pinpanel_sensor_read_errors_total", "counter",
               "Failed sensor reads by error code (crc, power_on, missing, io, unavailable...).",
               [({"sensor": s.config.id, "error": code}, n) for s in states
                for code, n in sorted(s.errors.items())])


async def metrics(request: Request) -> Response:
    return Response(render(request), media_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


def install(app: Any, counts: RequestCounts, telemetry: Telemetry) -> None:
    """Hand the app its request counters and the runtime's telemetry, to render."""
    app.state.request_counts = counts
    app.state.telemetry = telemetry


def routes() -> list[ApiRoute]:
    return [ApiRoute("/metrics", metrics, methods=["GET"], name="metrics", policy="read",
                     openapi={
                         "summary": "Prometheus metrics", "tags": ["system"],
                         "description": (
                             "Prometheus text format 0.0.4: requests by route and status, pin "
                             "changes by pin and cause, pin states, event stream clients, MQTT "
                             "connection, commit latency histogram, sensor values and read "
                             "errors, process memory. Needs the "
                             "read scope."),
                         "responses": {"200": {"description": "The metrics",
                                               "content": {"text/plain": {}}}}})]
