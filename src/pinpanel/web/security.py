"""The security layer: one pure ASGI middleware in front of every route.

For each request, in this order (the cheap refusals first):

1. **Host** must be trusted (``server.trusted_hosts``; by default IP literals, ``localhost``
   and ``*.local`` / ``*.lan`` / ``*.home.arpa``). A DNS-rebinding page reaches the Pi under
   the attacker's own host name, so this is what keeps it out. -> 400
2. **CORS**: preflights are answered only for origins in ``server.cors_origins``; there is no
   wildcard and no ``Access-Control-Allow-Credentials`` (allowed web apps send a Bearer
   token; cookies are ``SameSite=Strict`` and never cross sites anyway).
3. **Route policy**: the request is matched against the routes, once (the router reuses
   the match, see web/routing.py), and the route's declared policy is ``open``, ``read``,
   ``control`` or ``admin``. A route declared without one answers 403 to everyone: a route
   added later is closed until someone decides who may use it (a test enumerates the app's
   routes).
4. **Origin** of a state-changing request (any method but GET/HEAD/OPTIONS): a browser's
   ``Sec-Fetch-Site`` must say ``same-origin``; without it, ``Origin`` (or else ``Referer``)
   must name this host; allowlisted CORS origins pass. Tools such as curl send none of these
   and pass. This holds with auth off too: the open server still refuses a drive-by form
   post from some web page. -> 403
5. **Credentials**: ``Authorization: Bearer <token>``, else the session cookie. A bad token
   is a 401 and counts against the client address; past the limit of failures in a minute
   a bad token is answered 429 instead (logged once). A valid token is never refused here,
   whatever others at the same address send (see web/ratelimit.py).
   No credentials: a browser navigation is redirected to ``/login``, anything else is 401.
6. **Scope** of the principal against the policy. -> 403. A principal limited to some pins
   (a guest link, a per-pin token) reaches only routes declared ``pin_scoped``, which ask
   :func:`pinpanel.auth.may` per pin; every other route (sensors, settings, tokens...) is
   closed to it. -> 403
7. **CSRF**: a state-changing request authenticated by the session cookie must carry the
   session's CSRF token, in ``X-CSRF-Token`` (fetch) or a ``csrf_token`` form field (plain
   forms; the body is read here, within ``server.max_body_bytes``, and replayed to the
   route). Bearer clients are exempt: a browser never attaches that header on its own.

The principal goes into ``scope["pinpanel.principal"]`` (the audit log's actor is its name)
and every response gets the security headers below (a route may set its own instead).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinpanel.auth import OPEN_PRINCIPAL, Keyring, Principal, csrf_for
from pinpanel.config import Config
from pinpanel.web.context import PRINCIPAL_KEY
from pinpanel.web.problems import ProblemResponse
from pinpanel.web.ratelimit import FailureLimiter
from pinpanel.web.routing import Policy, RouteTable, pin_scoped, policy_of

log = logging.getLogger(__name__)

#: A path no route matches: authenticate first, so a stranger cannot map the API by 404s.
UNROUTED_POLICY: Policy = "read"
WHERE_TO_ADD = ("declare it as an ApiRoute with a policy (open, read, control or admin; see "
                "src/pinpanel/web/routing.py)")

SESSION_COOKIE = "pinpanel_session"
CSRF_KEY = "pinpanel.csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CORS_METHODS = "GET, HEAD, POST, PUT, DELETE"
CORS_HEADERS = "Authorization, Content-Type, X-CSRF-Token"
DEFAULT_HOST_SUFFIXES = (".local", ".lan", ".home.arpa", ".localhost")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
#: ``same-origin``, not ``no-referrer``: with the latter Chromium sends ``Origin: null`` on
#: the page's own form posts, which an origin check must then refuse.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
#: Every name :meth:`SecurityMiddleware.extra_headers` may add.
_EXTRA_NAMES = frozenset({name for name, _ in SECURITY_HEADERS} |
                         {b"access-control-allow-origin", b"vary"})
_CACHE_MAX = 4096


@dataclass
class Guard:
    """What the middleware and the login routes share: settings, keyring, failure counts."""

    config: Config
    keyring: Keyring
    limiter: FailureLimiter

    @classmethod
    def create(cls, config: Config, keyring: Keyring) -> Guard:
        return cls(config, keyring, FailureLimiter(config.auth.login_attempts_per_minute))

    @property
    def enabled(self) -> bool:
        return self.config.auth.enabled


def unguarded_routes(routes: list[BaseRoute]) -> list[str]:
    """Names of routes without a policy (logged at start-up; a test keeps this empty)."""
    return [str(getattr(r, "name", None)) for r in routes if policy_of(r) is None]


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def session_id_of(cookie: bytes | None) -> str | None:
    """The session id from a Cookie header, without a full cookie parse on the hot path."""
    if not cookie or SESSION_COOKIE.encode() not in cookie:
        return None
    for part in cookie.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            return value.strip('"') or None
    return None


def add_headers(start: Message, extra: tuple[tuple[bytes, bytes], ...]) -> None:
    """Add to a response's start message each of ``extra`` it does not set itself."""
    headers = list(start.get("headers", ()))
    present = {key for key, _ in headers}  # ASGI header names are lowercase
    if present.isdisjoint(_EXTRA_NAMES):
        headers += extra
    else:
        headers += [item for item in extra if item[0] not in present]
    start["headers"] = headers


def _netloc(url: bytes) -> bytes:
    """``host[:port]`` of an Origin or Referer, lowercased."""
    rest = url.split(b"://", 1)[1] if b"://" in url else b""
    return rest.split(b"/", 1)[0].lower()


def _origin(url: bytes) -> bytes:
    """``scheme://host[:port]`` of an Origin or Referer, lowercased."""
    scheme, _, rest = url.partition(b"://")
    return scheme.lower() + b"://" + rest.split(b"/", 1)[0].lower()


def _own_origin(scheme: str, host: bytes) -> bytes:
    """This request's origin as a browser writes it (behind a trusted proxy, the browser's
    scheme and host: see web/proxy.py), the scheme's default port left out."""
    host = host.lower()
    default = b":443" if scheme == "https" else b":80"
    if host.endswith(default):
        host = host[:-len(default)]
    return scheme.encode() + b"://" + host


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    """Pure ASGI (not ``BaseHTTPMiddleware``): no extra task per request, streams untouched."""

    def __init__(self, app: ASGIApp, *, guard: Guard, table: RouteTable) -> None:
        self.app = app
        self.guard = guard
        self.table = table
        server = guard.config.server
        self.trusted = tuple(h.lower().rstrip(".") for h in server.trusted_hosts)
        self.cors = frozenset(o.rstrip("/").lower().encode() for o in server.cors_origins
                              if o != "*")
        self.max_body = server.max_body_bytes
        self._hosts: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        allowed_origin = self.allowed_origin(headers)
        send = self._decorated(send, allowed_origin)
        answer, receive = await self.admit(scope, headers, allowed_origin, receive)
        await (self.app if answer is None else answer)(scope, receive, send)

    def allowed_origin(self, headers: dict[bytes, bytes]) -> bytes | None:
        """The request's ``Origin`` if it is one of ``server.cors_origins``, else None."""
        origin = headers.get(b"origin")
        return origin if origin is not None and origin.lower() in self.cors else None

    def extra_headers(self, allowed_origin: bytes | None) -> tuple[tuple[bytes, bytes], ...]:
        """What every response gets: the security headers, and CORS for an allowed origin."""
        if allowed_origin is None:
            return SECURITY_HEADERS
        return (*SECURITY_HEADERS, (b"access-control-allow-origin", allowed_origin),
                (b"vary", b"Origin"))

    async def admit(self, scope: Scope, headers: dict[bytes, bytes],
                    allowed_origin: bytes | None, receive: Receive,
                    ) -> tuple[Response | None, Receive]:
        """Steps 1-7 of the module docstring for one HTTP request (``headers`` its own).

        Returns the answer to send instead of the route's (a refusal, a preflight; None:
        go on to the route) and the ``receive`` to read the body from (the CSRF check may
        have read a form body, then replayed). Whoever sends either adds the security
        headers (:meth:`extra_headers`).
        """
        origin = headers.get(b"origin")
        host = headers.get(b"host", b"")
        if not self._host_ok(host):
            return ProblemResponse(400, f"host {host.decode('latin-1')!r} is not trusted; if "
                                   "that is how you reach this server, add it to [server] "
                                   "trusted_hosts"), receive
        method = scope["method"]
        if method == "OPTIONS" and origin is not None and \
                b"access-control-request-method" in headers:
            return self._preflight(allowed_origin), receive
        route = self.table.match(scope).route
        policy = UNROUTED_POLICY if route is None else policy_of(route)
        if policy is None:
            name = getattr(route, "name", None)
            return ProblemResponse(
                403, f"route {name!r} has no security policy, so it is closed to everyone; "
                f"{WHERE_TO_ADD}"), receive
        unsafe = method not in SAFE_METHODS
        if unsafe and allowed_origin is None and (why := self._foreign(
                headers, _own_origin(scope["scheme"], host))):
            return ProblemResponse(403, why), receive

        guard = self.guard
        principal: Principal | None = scope.get(PRINCIPAL_KEY)  # set in-process only
        session_id = None
        if principal is None and not guard.enabled:
            principal = OPEN_PRINCIPAL
        elif principal is None:
            authorization = headers.get(b"authorization")
            if authorization is not None and policy != "open":
                refusal, principal = self._bearer(authorization, scope)
                if refusal is not None:
                    return refusal, receive
            elif (session_id := session_id_of(headers.get(b"cookie"))) is not None:
                principal = guard.keyring.verify_session(session_id)
                if principal is None:
                    session_id = None
        if policy != "open":
            if principal is None:
                return self._unauthenticated(scope, headers), receive
            if not principal.allows(policy):
                return ProblemResponse(
                    403, f"this needs {'an' if policy == 'admin' else 'a'} {policy} token; "
                    f"{principal.name!r} has scope {principal.scope}"), receive
            if principal.limited and not pin_scoped(route):
                return ProblemResponse(
                    403, f"{principal.name!r} is limited to some pins and actions; this "
                    "route is not among them"), receive
        if principal is not None:
            scope[PRINCIPAL_KEY] = principal
        if session_id is not None:
            csrf = csrf_for(session_id)
            scope[CSRF_KEY] = csrf
            if unsafe:
                sent, receive = await self._csrf_sent(scope, headers, receive)
                if sent is None:
                    return ProblemResponse(413, f"request body is larger than "
                                           f"{self.max_body} bytes"), receive
                if not hmac.compare_digest(sent, csrf.encode()):
                    return ProblemResponse(
                        403, "missing or wrong CSRF token: reload the page and try again "
                        "(scripts: send X-CSRF-Token from <meta name=csrf-token>)"), receive
        return None, receive

    def _decorated(self, send: Send, allowed_origin: bytes | None) -> Send:
        extra = self.extra_headers(allowed_origin)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_headers(message, extra)
            await send(message)

        return send_with_headers

    def _host_ok(self, raw: bytes) -> bool:
        known = self._hosts.get(raw)
        if known is not None:
            return known
        name = _host_name(raw.decode("latin-1").strip().lower()).rstrip(".")
        if self.trusted:
            ok = any(name == t or (t.startswith("*.") and name.endswith(t[1:]))
                     for t in self.trusted)
        elif name == "localhost" or name.endswith(DEFAULT_HOST_SUFFIXES):
            ok = True
        else:
            try:
                ipaddress.ip_address(name)
                ok = True
            except ValueError:
                ok = False
        if len(self._hosts) >= _CACHE_MAX:
            self._hosts.clear()
        self._hosts[raw] = ok
        return ok

    def _foreign(self, headers: dict[bytes, bytes], own: bytes) -> str | None:
        """Why a state-changing request looks cross-site (None: same origin, or no browser)."""
        site = headers.get(b"sec-fetch-site")
        if site is not None:
            if site in (b"same-origin", b"none"):
                return None
            return f"cross-site request refused (Sec-Fetch-Site: {site.decode('latin-1')})"
        origin = headers.get(b"origin")
        if origin is not None:
            if origin == b"null" or _origin(origin) != own:
                return f"request from origin {origin.decode('latin-1')!r} refused"
            return None
        referer = headers.get(b"referer")
        if referer is not None and _origin(referer) != own:
            return "request from another site refused (Referer)"
        return None

    def _bearer(self, authorization: bytes, scope: Scope,
                ) -> tuple[ProblemResponse | None, Principal | None]:
        challenge = {"WWW-Authenticate": 'Bearer realm="pinpanel"'}
        kind, _, credential = authorization.decode("latin-1").partition(" ")
        if kind.lower() != "bearer" or not credential.strip():
            return ProblemResponse(401, "use Authorization: Bearer <token>",
                                   headers=challenge), None
        principal = self.guard.keyring.verify_token(credential.strip())
        if principal is not None:
            return None, principal
        client = client_of(scope)
        wait, began = self.guard.limiter.failed(client)
        if wait is None:
            log.warning("refused an unknown or revoked token from %s (%s %s)", client,
                        scope["method"], scope["path"])
            return ProblemResponse(401, "the token is not valid (unknown or revoked)",
                                   headers={"WWW-Authenticate": 'Bearer realm="pinpanel", '
                                            'error="invalid_token"'}), None
        if began:
            log.warning("too many failed credential checks from %s: bad tokens from it are "
                        "answered 429 (not logged) for %d s; valid ones still pass", client,
                        wait)
        return ProblemResponse(429, f"too many failed attempts; try again in {wait} s",
                               headers={"Retry-After": str(wait)}), None

    def _unauthenticated(self, scope: Scope, headers: dict[bytes, bytes]) -> Response:
        browsing = scope["method"] in ("GET", "HEAD") and b"text/html" in headers.get(
            b"accept", b"")
        if browsing:
            target = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}"
                                      if scope.get("query_string") else "")
            location = f"{scope.get('root_path', '')}/login?next={quote(target, safe='/')}"
            response = RedirectResponse(location, status_code=303,
                                        headers={"Cache-Control": "no-store"})
            if session_id_of(headers.get(b"cookie")):  # ended or expired: forget it
                response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        return ProblemResponse(401, "this needs a token (Authorization: Bearer <token>) or a "
                               "login session", headers={"WWW-Authenticate":
                                                         'Bearer realm="pinpanel"'})

    async def _csrf_sent(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive,
                         ) -> tuple[bytes | None, Receive]:
        """The CSRF token the request carries (b"" if none; None if the body is too big).

        A form field means reading the body here; the route then gets it replayed.
        """
        sent = headers.get(b"x-csrf-token")
        if sent is not None:
            return sent.strip(), receive
        kind = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if kind != b"application/x-www-form-urlencoded":
            return b"", receive
        body = await _read_body(receive, self.max_body)
        if body is None:
            return None, receive
        fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        value = next((v for k, v in fields if k == CSRF_FIELD), "")
        return value.encode("latin-1", "replace"), _replay(body, receive)

    @staticmethod
    def _preflight(allowed_origin: bytes | None) -> Response:
        if allowed_origin is None:
            return ProblemResponse(403, "this origin may not call the API; allowed origins "
                                   "are listed in [server] cors_origins")
        return Response(b"", status_code=204, headers={
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": "600", "Content-Length": "0"})

    # -- WebSocket (no route uses one today; the same rules, answered with a close) ------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        principal: Principal | None = OPEN_PRINCIPAL if not self.guard.enabled else None
        session_id = session_id_of(headers.get(b"cookie"))
        if principal is None and session_id is not None:
            principal = self.guard.keyring.verify_session(session_id)
        route = self.table.match(scope).route
        policy = UNROUTED_POLICY if route is None else policy_of(route)
        origin = headers.get(b"origin")
        same = origin is None or origin.lower() in self.cors or \
            _netloc(origin) == headers.get(b"host", b"").lower()
        if (policy is None or principal is None or not principal.allows(
                "read" if policy == "open" else policy) or not same
                or (principal.limited and not pin_scoped(route))
                or not self._host_ok(headers.get(b"host", b""))):
            await send({"type": "websocket.close", "code": 1008})
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body over once, then defers to the server."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


# -- for templates and the app factory -------------------------------------------------------


def csrf_token_of(scope: MutableMapping[str, Any]) -> str:
    """The CSRF token of this request's session ('' without one: open mode, Bearer)."""
    return str(scope.get(CSRF_KEY, ""))


def session_user_of(scope: MutableMapping[str, Any]) -> str | None:
    """The signed-in browser user's name, for the page header's Sign out button."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal.name if isinstance(principal, Principal) and \
        principal.via == "session" else None


#: How to authenticate, for the OpenAPI document (open routes opt out with ``security: []``).
OPENAPI_SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "pinpanel token create NAME --scope read|control|admin"},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                "description": "Browser login (/login); state changes also need the "
                               "X-CSRF-Token header"},
}


def template_context(request: Any) -> dict[str, Any]:
    """A Jinja2 context processor: what every page needs for forms and the header."""
    return {"csrf_token": csrf_token_of(request.scope),
            "session_user": session_user_of(request.scope)}


def warn_unguarded(routes: list[BaseRoute]) -> None:
    """Log routes without a policy: they answer 403 to everyone until one is added."""
    for name in unguarded_routes(routes):
        log.warning("route %r has no security policy and is closed to everyone; %s",
                    name, WHERE_TO_ADD)
