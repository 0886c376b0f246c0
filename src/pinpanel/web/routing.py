"""Routes declared once, and matched once per request.

A pinpanel route is an :class:`ApiRoute`: Starlette's ``Route`` plus who may use it
(``policy``) and its OpenAPI operation. The app, the security layer and the OpenAPI builder
all read the same list, so a route cannot be served without a policy being decided, nor
documented differently from how it is routed. A route that is not an ``ApiRoute`` (or
``ApiMount``) has no policy and answers 403 to everyone: closed by default.

:class:`RouteTable` matches a request against the routes once and remembers the answer per
method and path; the security layer asks it first, the router (:class:`TableRouter`) and
the request metrics reuse the same answer from the scope instead of walking the routes
again. It also knows every method served on a path, so a 405's ``Allow`` names them all,
not only those of the first route that matched the path.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from pinpanel.config import Config

Policy = Literal["open", "read", "control", "admin"]
#: One OpenAPI operation object (summary, parameters, responses...).
Operation = Mapping[str, Any]
#: An operation, or what makes it from the configuration (a route whose values are the pins).
Documented = Operation | Callable[[Config], Operation]
#: Where the scope carries this request's :class:`Matched`.
MATCH_KEY = "pinpanel.match"
#: Entries kept per table before it starts afresh (paths carry pin names: bounded).
CACHE_MAX = 4096


class ApiRoute(Route):
    """A route with its policy and its OpenAPI operation, declared in one place.

    ``openapi`` documents the route's path for each of its methods (HEAD aside).
    ``openapi_paths`` is for a route whose one pattern the document spells out as several
    paths (``/api/v1/pins/{pin}/{action}`` as ``.../on``, ``.../off``, ``.../toggle``).
    ``schemas`` are the components its operation refers to by ``$ref``.
    ``pin_scoped`` says the route asks :func:`pinpanel.auth.may` per pin itself (it lists
    only the pins a guest may see, refuses actions not granted); a route without it is
    closed to a principal limited to some pins (guest links, per-pin tokens).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: Collection[str],
                 name: str, policy: Policy, openapi: Documented | None = None,
                 openapi_paths: Mapping[str, Documented] | None = None,
                 schemas: Mapping[str, Any] | None = None, pin_scoped: bool = False) -> None:
        super().__init__(path, endpoint, methods=list(methods), name=name)
        self.policy: Policy = policy
        self.pin_scoped = pin_scoped
        self.openapi = openapi
        self.openapi_paths = openapi_paths
        self.schemas: Mapping[str, Any] = schemas or {}


class ApiMount(Mount):
    """A mounted app (the static files) with its policy; never part of the API document."""

    def __init__(self, path: str, app: ASGIApp, *, name: str, policy: Policy) -> None:
        super().__init__(path, app=app, name=name)
        self.policy: Policy = policy


def pin_scoped(route: BaseRoute | None) -> bool:
    """Whether the route checks per-pin grants itself (see :class:`ApiRoute`)."""
    return bool(getattr(route, "pin_scoped", False))


def policy_of(route: BaseRoute | None) -> Policy | None:
    """The route's policy; None (closed to everyone) for a route declared without one."""
    policy: Policy | None = getattr(route, "policy", None)
    return policy


@dataclass(frozen=True, slots=True)
class Matched:
    """The route a request goes to: the first full match, else the first partial one.

    ``full`` False means the path matched but not the method (a 405); ``allow`` is then
    every method served on the path, sorted.
    """

    route: BaseRoute | None
    full: bool
    child_scope: Mapping[str, Any]
    allow: str = ""


UNMATCHED = Matched(None, False, {})


class RouteTable:
    """The app's routes and each (method, path)'s match, computed once."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.routes = routes
        self._cache: dict[tuple[str, str, str, str], Matched] = {}
        self._count = len(routes)

    def match(self, scope: Scope) -> Matched:
        """The match of this request, remembered in the scope for the later layers."""
        matched: Matched | None = scope.get(MATCH_KEY)
        if matched is None:
            matched = scope[MATCH_KEY] = self._lookup(scope)
        return matched

    def _lookup(self, scope: Scope) -> Matched:
        key = (scope["type"], scope.get("method", ""), scope.get("root_path", ""),
               scope["path"])
        if len(self.routes) != self._count:  # a route was added (tests do): start afresh
            self._cache.clear()
            self._count = len(self.routes)
        matched = self._cache.get(key)
        if matched is None:
            matched = self._walk(scope)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = matched
        return matched

    def _walk(self, scope: Scope) -> Matched:
        partial: tuple[BaseRoute, Scope] | None = None
        methods: set[str] = set()
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:  # even after a partial one, as Starlette's router
                return Matched(route, True, child)
            if match is Match.PARTIAL:
                methods.update(getattr(route, "methods", None) or ())
                if partial is None:
                    partial = (route, child)
        if partial is None:
            return UNMATCHED
        return Matched(partial[0], False, partial[1], ", ".join(sorted(methods)))


class TableRouter(Router):
    """Starlette's router, dispatching on the table's (usually already made) match."""

    def __init__(self, table: RouteTable, **kwargs: Any) -> None:
        super().__init__(table.routes, **kwargs)
        self.routes = table.routes  # one list: a route added later is seen by both
        self.table = table

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().app(scope, receive, send)
            return
        await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand an HTTP or WebSocket request to its route (the app's gate calls this)."""
        if "router" not in scope:
            scope["router"] = self
        matched = self.table.match(scope)
        route = matched.route
        if route is None:
            await self._unrouted(scope, receive, send)
            return
        scope["route"] = route
        scope.update(matched.child_scope)
        if not matched.full and scope["type"] == "http" and isinstance(route, Route):
            raise HTTPException(status_code=405, headers={"Allow": matched.allow})
        await route.handle(scope, receive, send)

    async def _unrouted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As Starlette does: a redirect when the other spelling of a trailing slash exists."""
        path = scope["path"]
        if scope["type"] == "http" and self.redirect_slashes and path != "/":
            other = dict(scope)
            other["path"] = path.rstrip("/") if path.endswith("/") else path + "/"
            other.pop(MATCH_KEY, None)
            if self.table.match(other).route is not None:
                await RedirectResponse(url=str(URL(scope=other)))(scope, receive, send)
                return
        await self.default(scope, receive, send)
