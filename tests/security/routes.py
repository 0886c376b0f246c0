"""Turn the app's route table into concrete requests, one per route and method.

Derived from the routes themselves (``app_routes()``, Mounts included), never from a list
written here, so a route someone adds later is in the matrix without anyone remembering.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

from pinpanel.web.routing import policy_of

#: A value for each path parameter name; anything else gets "x".
SAMPLE_PARAMS = {"pin": "18", "action": "toggle", "name": "nobody", "path": "pinpanel.css"}
#: Requests that would really change something if let through, so "refused" means
#: "refused before anything happened" rather than "refused for a bad body".
OVERRIDES: dict[str, dict[str, Any]] = {
    "pin_put": {"json": {"state": True}},
    "pin_pulse": {"json": {"ms": 20}},
    "pin_simulate": {"path": "/api/v1/pins/button/simulate", "json": {"level": "low"}},
    "compat_toggle": {"path": "/api/toggle/23", "headers": {"Content-Type": "application/json"}},
    "compat_list": {"headers": {"Content-Type": "application/json"}},
    "form_toggle": {"path": "/toggle?pin=24", "form": {}},
    "login_submit": {"form": {}},  # the test adds a token
    "logout": {"form": {}},
}
PARAM = re.compile(r"{(\w+)(:\w+)?}")


@dataclass(frozen=True)
class Probe:
    name: str
    method: str
    path: str
    json: Any = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: The route's declared policy (None: declared without one, so closed to everyone).
    policy: str | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} ({self.name})"


def probes(routes: Iterable[BaseRoute]) -> list[Probe]:
    found: list[Probe] = []
    for route in routes:
        name = str(getattr(route, "name", None))
        extra = OVERRIDES.get(name, {})
        if isinstance(route, Mount):
            found.append(Probe(name, "GET", extra.get("path", f"{route.path}/pinpanel.css"),
                               policy=policy_of(route)))
            continue
        if not isinstance(route, Route):
            raise AssertionError(f"route {route!r} is neither a Route nor a Mount: teach "
                                 "tests/security/routes.py how to probe it")
        path = extra.get("path") or PARAM.sub(lambda m: SAMPLE_PARAMS.get(m[1], "x"),
                                                 route.path)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            found.append(Probe(name, method, path, extra.get("json"), extra.get("form"),
                               dict(extra.get("headers", {})), policy_of(route)))
    return found
