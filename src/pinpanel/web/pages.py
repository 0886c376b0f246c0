"""The page people use: a table of pins that works on a phone and without JavaScript.

Each Toggle button is a plain form posting to the tutorial's ``/toggle?pin=N`` and
answered with a redirect back here, so the page works with scripts off; the script in
``static/`` only adds live updates on top.

The page is the most requested URL and rendering it costs milliseconds (Jinja, 26 KB of
markup, the timelines), while what it shows changes only with a committed change, a pin's
state, the minute (timelines, "since 14:02") and who is looking. So :class:`PageCache`
renders once per such key and a request costs a dict lookup and a bytes join: the two
per-request values, the session's CSRF token and the render time, are drawn as markers and
spliced in per request.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import escape
from starlette.requests import Request

from pinpanel import __version__
from pinpanel.auth import Principal, may
from pinpanel.changes import format_time
from pinpanel.web import assets, charts, header_diagram, history, security
from pinpanel.web.context import PRINCIPAL_KEY, board_of
from pinpanel.web.openapi import html_response
from pinpanel.web.replies import BytesEndpoint, Reply, header
from pinpanel.web.routing import ApiRoute

if TYPE_CHECKING:
    import jinja2
    from starlette.templating import Jinja2Templates, _TemplateResponse


class Templates:
    """The pages' Jinja2 templates, made at the first page rendered, not at start-up.

    Jinja2 is ~1.7 MiB resident once imported; a Pi driven over the API, MQTT or a hub
    alone never renders a page, so it does not pay for it (#21, idle RSS). The first page
    after start costs the import, a few tens of ms, once.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._templates: Jinja2Templates | None = None

    def _made(self) -> Jinja2Templates:
        if self._templates is None:
            from starlette.templating import Jinja2Templates

            templates = Jinja2Templates(directory=str(self._directory))
            # Templates ship inside the package: no stat() of every template file per render.
            templates.env.auto_reload = False
            # Every template gets csrf_token (forms, <meta name="csrf-token">), session_user.
            templates.context_processors.append(security.template_context)
            # Asset links carry their content's digest (?v=): cached for a year.
            templates.env.globals["asset_version"] = assets.version
            self._templates = templates
        return self._templates

    @property
    def context_processors(self) -> list[Any]:
        return self._made().context_processors

    def get_template(self, name: str) -> jinja2.Template:
        return self._made().get_template(name)

    def TemplateResponse(self, request: Request, name: str,
                         context: dict[str, Any] | None = None,
                         **kwargs: Any) -> _TemplateResponse:
        return self._made().TemplateResponse(request, name, context, **kwargs)


TEMPLATES = Templates(Path(__file__).with_name("templates"))


def page_context(request: Request, **extra: Any) -> dict[str, Any]:
    """What every page template is given: the board's facts and the request."""
    board = board_of(request)
    return {
        "version": __version__,
        "backend": board.hardware.info.name,
        "simulated": board.simulated,
        "auth_enabled": request.app.state.auth_enabled,
        **extra,
    }


#: Drawn in place of the per-request values, then replaced; no page content contains them
#: (they are not valid in any pin name, id or actor, and escaping leaves them unchanged).
CSRF_MARK = "\x00csrf\x00"
NOW_MARK = "\x00now\x00"
_MARKS = (CSRF_MARK.encode(), NOW_MARK.encode())
_SPLIT = re.compile(b"(" + b"|".join(re.escape(m) for m in _MARKS) + b")")


class PageCache:
    """Rendered pages, split at the per-request markers, by what they show.

    The key holds everything a render reads that can change while the server runs: the
    last committed seq and every pin's view (state, pulse; the hardware can be ahead of the
    commit), the minute, who is signed in and whether the page carries a CSRF token, and the
    request's scheme, host and root path (``url_for`` makes absolute URLs). Bounded: a
    handful of keys are live at a time, and the oldest go first.
    """

    MAX_ENTRIES = 16

    def __init__(self) -> None:
        self._pages: dict[tuple[Any, ...], list[bytes]] = {}
        self._last: tuple[tuple[Any, ...] | None, list[bytes] | None] = (None, None)
        self._second = -1
        self._second_text = ""

    async def render(self, request: Request) -> bytes:
        board = board_of(request)
        scope = request.scope
        principal = scope.get(PRINCIPAL_KEY)
        grants = principal.grants if isinstance(principal, Principal) else None
        csrf = security.csrf_token_of(scope)
        user = security.session_user_of(scope)
        admin = _is_admin(scope)
        sampler = getattr(request.app.state, "sensors", None)
        # What the pins show: the board's key for its views (None until every pin has a
        # committed change; then the views themselves, read afresh).
        views: list[Any] | None = None
        shown = board.views_key()
        if shown is None:
            views = self._views(board, grants)
            shown = (board.hub.last_seq, tuple(views))
        key = (shown, int(time.time() // 60), user, admin, grants, bool(csrf),
               scope["scheme"], header(scope, b"host"), scope.get("root_path", ""),
               sampler.published if sampler is not None else 0)
        # The same key as the last request's (the common case) is found by comparing, not
        # hashing: equal parts compare by identity, a pin's config would hash every field.
        last_key, parts = self._last
        if key != last_key:
            parts = self._pages.get(key)
        if parts is None:
            parts = await self._draw(
                request, self._views(board, grants) if views is None else views,
                mark_csrf=bool(csrf), admin=admin, limited=grants is not None)
            if len(self._pages) >= self.MAX_ENTRIES:
                del self._pages[next(iter(self._pages))]
            self._pages[key] = parts
        self._last = (key, parts)
        values = {_MARKS[0]: str(escape(csrf)).encode() if csrf else b"",
                  _MARKS[1]: self._clock_text(board.clock.time())}
        return b"".join(values.get(part, part) for part in parts)

    def _clock_text(self, now: float) -> bytes:
        """``format_time`` of ``now``, its seconds formatted once per second.

        The milliseconds are rounded as ``datetime.fromtimestamp`` rounds (half to even,
        to the microsecond); one that rounds into the next second takes the long way.
        """
        second = int(now)
        micros = round((now - second) * 1_000_000)
        if now < 0 or micros >= 1_000_000:
            return format_time(datetime.fromtimestamp(now, UTC)).encode()
        if second != self._second:
            self._second = second
            self._second_text = format_time(datetime.fromtimestamp(second, UTC))[:-4]
        return f"{self._second_text}{micros // 1000:03d}Z".encode()

    @staticmethod
    def _views(board: Any, grants: Any) -> list[Any]:
        """A guest's page lists only its pins, with only the buttons it may use."""
        return [v for v in board.views() if grants is None or (v.pin, "see") in grants]

    @staticmethod
    async def _draw(request: Request, views: list[Any], *, mark_csrf: bool,
                    admin: bool, limited: bool = False) -> list[bytes]:
        """Render index.html with markers; return it split so the markers are own items."""
        board = board_of(request)
        sampler = getattr(request.app.state, "sensors", None)
        # The diagram marks the pins counters claim; guests see no sensors, so none of that.
        claimed = [] if limited or sampler is None else [
            state.config for state in sampler.states.values()]
        context = page_context(request, pins=views, seq=board.hub.last_seq,
                               header=header_diagram.slots(views, claimed), hd=header_diagram,
                               settings={p.pin: p for p in board.config.pins}, now=NOW_MARK,
                               admin=admin, can=_can(request),
                               # Guests see their pins only: no sensors unless granted.
                               sensors=[] if limited else await charts.page_sensors(request),
                               **await history.page_history(request))
        context["request"] = request
        for processor in TEMPLATES.context_processors:
            context.update(processor(request))
        if mark_csrf:
            context["csrf_token"] = CSRF_MARK
        html = TEMPLATES.get_template("index.html").render(context).encode()
        return [part for part in _SPLIT.split(html) if part]


def _can(request: Request) -> Any:
    """``can(pin, action)`` for the template: which buttons a limited caller gets (everyone
    else gets every button, as before: a read token's click is refused by the route)."""
    principal = request.scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal) or not principal.limited:
        return lambda pin, action: True
    return lambda pin, action: may(principal, action, pin)


def _is_admin(scope: Any) -> bool:
    """Whether the caller may use admin routes (the page then offers the backup download)."""
    principal = scope.get(PRINCIPAL_KEY)
    return isinstance(principal, Principal) and principal.allows("admin")


async def render_page(request: Request) -> Reply:
    cache: PageCache = request.app.state.page_cache
    return 200, await cache.render(request)


#: The page as a plain ASGI endpoint: the most requested URL, its header block built once.
page = BytesEndpoint(render_page, b"text/html; charset=utf-8",
                     ((b"cache-control", b"no-store"),))


def routes() -> list[ApiRoute]:
    return [ApiRoute("/", page, methods=["GET"], name="page", policy="read", pin_scoped=True,
                     openapi={"summary": "The page", "tags": ["page"],
                              "responses": {"200": html_response()}})]
