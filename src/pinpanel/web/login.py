"""Logging in with a token in a browser, and out again.

``GET /login`` never changes anything: with ``?token=...`` (the link printed at first start,
or scanned as a QR code) it shows a Sign in button that posts the token, so a link cannot
log anyone in behind their back (no login CSRF). Without one it shows a field to paste a
token into. ``POST /login`` checks the token (failures count per client address, like bad
API tokens), opens a server-side session and sets its cookie: ``HttpOnly`` (no script reads
it), ``SameSite=Strict`` (no other site's request carries it), ``Secure`` under HTTPS,
``Path=/``. ``POST /logout`` ends the session; it needs the session's CSRF token.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pinpanel.web.bodies import read_body
from pinpanel.web.context import PRINCIPAL_KEY
from pinpanel.web.openapi import html_response
from pinpanel.web.pages import TEMPLATES, page_context
from pinpanel.web.routing import ApiRoute
from pinpanel.web.security import SESSION_COOKIE, Guard, client_of, session_id_of

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}


def guard_of(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


def safe_next(value: str | None) -> str:
    """Only a path on this server: never ``//other.site`` or ``https://...`` (open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


#: A login link carries a token in its query: the page it opens sends no ``Referer`` at all
#: (not even to its own stylesheet), so the token is not copied into a proxy's access log
#: with every asset the page loads. Its Sign in post still passes the origin check, which
#: reads ``Sec-Fetch-Site`` first.
NO_REFERRER = {**NO_STORE, "Referrer-Policy": "no-referrer"}


def _render(request: Request, status: int = 200, **extra: Any) -> Response:
    headers = NO_REFERRER if extra.get("token") else NO_STORE
    context = page_context(request, next=safe_next(extra.pop("next", None)), **extra)
    return TEMPLATES.TemplateResponse(request, "login.html", context, status_code=status,
                                      headers=headers)


async def login_page(request: Request) -> Response:
    guard = guard_of(request)
    next_path = safe_next(request.query_params.get("next"))
    if not guard.enabled:
        return RedirectResponse(next_path, status_code=303)
    token = request.query_params.get("token", "")
    principal = request.scope.get(PRINCIPAL_KEY)
    if not token and principal is not None and principal.via == "session":
        return RedirectResponse(next_path, status_code=303)
    return _render(request, token=token, next=next_path)


async def login_submit(request: Request) -> Response:
    guard = guard_of(request)
    if not guard.enabled:
        return RedirectResponse("/", status_code=303)
    body = await read_body(request, request.app.state.max_body_bytes)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    next_path = safe_next(form.get("next"))
    principal = guard.keyring.verify_token(form.get("token", "").strip())
    if principal is None:
        # Only failures are limited: a valid token logs in whatever others here tried.
        client = client_of(request.scope)
        wait, began = guard.limiter.failed(client)
        if wait is None:
            log.warning("failed login from %s", client)
            return _render(request, 401, next=next_path,
                           error="That token is not valid: it may have been revoked, or "
                                 "mistyped. Ask whoever runs this pinpanel for a new one.")
        if began:
            log.warning("too many failed logins from %s: answered 429 (not logged) for %d s",
                        client, wait)
        response = _render(request, 429, next=next_path,
                           error=f"Too many failed attempts. Try again in {wait} seconds.")
        response.headers["Retry-After"] = str(wait)
        return response
    hours = guard.config.auth.session_hours
    session_id = await guard.keyring.open_session(principal, hours)
    response = RedirectResponse(next_path, status_code=303, headers=NO_STORE)
    response.set_cookie(SESSION_COOKIE, session_id, max_age=hours * 3600, path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    session_id = session_id_of(request.headers.get("cookie", "").encode("latin-1"))
    if session_id is not None:
        await guard_of(request).keyring.close_session(session_id)
    response = RedirectResponse(request.url_for("login").path, status_code=303,
                                headers=NO_STORE)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


SCHEMAS: dict[str, Any] = {"LoginForm": {
    "type": "object", "required": ["token"], "properties": {
        "token": {"type": "string", "description": "An API token"},
        "next": {"type": "string", "description": "A path on this server to go to"},
        "csrf_token": {"type": "string", "description": "Needed when already logged in"}}}}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/login", login_page, methods=["GET"], name="login", policy="open", openapi={
            "summary": "The login page (a token in ?token= is shown for confirmation, never "
                       "used)", "tags": ["page"],
            "parameters": [{"name": "token", "in": "query", "schema": {"type": "string"}},
                           {"name": "next", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": html_response(),
                          "303": {"description": "Auth is off, or already logged in"}}}),
        ApiRoute("/login", login_submit, methods=["POST"], name="login_submit", policy="open",
                 schemas=SCHEMAS, openapi={
                     "summary": "Log in with a token: sets the session cookie", "tags": ["page"],
                     "requestBody": {"required": True, "content": {
                         "application/x-www-form-urlencoded": {
                             "schema": {"$ref": "#/components/schemas/LoginForm"}}}},
                     "responses": {"303": {"description": "Logged in; back to next"},
                                   "401": html_response("The token is not valid"),
                                   "429": html_response("Too many failed logins from this "
                                                        "address; see Retry-After")}}),
        # Open, so an expired session can still sign out; a live one needs its CSRF token.
        ApiRoute("/logout", logout, methods=["POST"], name="logout", policy="open", openapi={
            "summary": "End the browser session (needs the CSRF token)", "tags": ["page"],
            "responses": {"303": {"description": "Logged out; to /login"}}}),
    ]
