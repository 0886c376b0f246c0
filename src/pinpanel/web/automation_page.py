"""The automation page: schedules and rules, their next run, switches and an add form.

Plain HTML forms (url-encoded, with the session's CSRF field like every other form),
answered with a redirect back to the page, so it all works without JavaScript. The work is
the books' (:mod:`pinpanel.automation.schedules`, :mod:`pinpanel.automation.rulebook`):
a schedule added here is the same record, checked the same way, as one posted to
``POST /api/v1/schedules``. Editing needs an admin; reading needs read, as the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pinpanel.errors import AutomationConflictError, AutomationError
from pinpanel.schedule_config import DAYS
from pinpanel.web import pages
from pinpanel.web import rules as rule_routes
from pinpanel.web import schedules as schedule_routes
from pinpanel.web.bodies import media_type, read_body
from pinpanel.web.context import actor_of, board_of
from pinpanel.web.openapi import html_response, ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

FORM = "application/x-www-form-urlencoded"


def _render(request: Request, *, error: str | None = None, status: int = 200,
            values: dict[str, Any] | None = None) -> Response:
    board = board_of(request)
    book = schedule_routes.book_of(request)
    now = schedule_routes.now_of(book)
    schedules = [book.as_json(board, book.entry(s.id), now) for s in book.schedules()]
    rule_book = getattr(request.app.state, "rules", None)
    rules = [rule_book.as_json(board, e) for e in rule_book.entries()] if rule_book else []
    context = pages.page_context(
        request, schedules=schedules, rules=rules, error=error, form=values or {},
        admin=pages._is_admin(request.scope), days=DAYS,
        outputs=[p for p in board.config.pins if p.is_output],
        groups=board.config.all_groups(), scenes=board.config.scenes,
        located=book.config.located, zone=book.place.timezone)
    return pages.TEMPLATES.TemplateResponse(request, "automation.html", context,
                                            status_code=status,
                                            headers={"Cache-Control": "no-store"})


async def automation_page(request: Request) -> Response:
    return _render(request)


async def _form(request: Request) -> list[tuple[str, str]]:
    if media_type(request) != FORM:
        raise Problem(415, f"send the form as {FORM}")
    body = await read_body(request, request.app.state.max_body_bytes)
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def _back(request: Request) -> Response:
    return RedirectResponse(request.url_for("automation_page").path, status_code=303)


def schedule_from_form(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The form's fields as a schedule body (what the API takes)."""
    form = dict(fields)
    body: dict[str, Any] = {"id": form.get("id", "").strip().lower()}
    if form.get("name", "").strip():
        body["name"] = form["name"].strip()
    when = form.get("when", "").strip()
    if form.get("kind") == "cron":
        body["cron"] = when
    else:
        body["at"] = when
        days = [value for key, value in fields if key == "days"]
        if days and len(days) < len(DAYS):
            body["days"] = days
    kind, _, target = form.get("target", "").partition(":")
    action = form.get("action", "on")
    if kind == "scene":
        body["scene"] = target
    elif kind == "group":
        body.update(group=target, action=action)
    else:
        body.update(pins=[target] if target else [], action=action)
        if action == "pulse" and form.get("ms", "").strip():
            try:
                body["ms"] = int(form["ms"])
            except ValueError:
                body["ms"] = form["ms"]  # the checker names the problem
    return body


async def add_schedule(request: Request) -> Response:
    fields = await _form(request)
    book = schedule_routes.book_of(request)
    try:
        await book.create(schedule_from_form(fields), actor_of(request, "form").name)
    except (AutomationError, AutomationConflictError) as exc:
        status = 409 if isinstance(exc, AutomationConflictError) else 422
        return _render(request, error=str(exc), status=status, values=dict(fields))
    return _back(request)


async def switch_schedule(request: Request) -> Response:
    form = dict(await _form(request))
    book = schedule_routes.book_of(request)
    await book.update(request.path_params["schedule"], {"enabled": form.get("enabled") == "on"},
                      actor_of(request, "form").name)
    return _back(request)


async def switch_rule(request: Request) -> Response:
    form = dict(await _form(request))
    book = rule_routes.book_of(request)
    await book.update(request.path_params["rule"], {"enabled": form.get("enabled") == "on"},
                      actor_of(request, "form").name)
    return _back(request)


def _form_doc(summary: str, param: str | None = None) -> dict[str, Any]:
    parameters = [{"name": param, "in": "path", "required": True,
                   "schema": {"type": "string"}, "description": f"The {param}'s id"}] \
        if param else []
    return {"summary": summary, "tags": ["page"], "parameters": parameters,
            "requestBody": {"required": True, "content": {FORM: {"schema": ref(
                "AutomationForm")}}},
            "description": "The automation page's form (url-encoded, with csrf_token); "
                           "answers with a redirect to the page, or the page with the "
                           "problem (422, 409).",
            "responses": {"303": {"description": "Back to the page"},
                          "404": {"description": "Unknown schedule or rule"},
                          "409": {"description": "The id is taken"},
                          "415": {"description": "Not a url-encoded form"},
                          "422": {"description": "The page, with every problem listed"}}}


SCHEMAS: dict[str, Any] = {"AutomationForm": {
    "type": "object", "description": "The automation page's form (url-encoded): id, name, "
    "kind (at or cron), when, days, target (pin:<id>, group:<id>, scene:<id>), action, ms; "
    "or enabled (on or off); and csrf_token"}}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/automation", automation_page, methods=["GET"], name="automation_page",
                 policy="read", openapi={"summary": "Schedules and rules", "tags": ["page"],
                                         "responses": {"200": html_response()}}),
        ApiRoute("/automation/schedules", add_schedule, methods=["POST"],
                 name="form_schedule_add", policy="admin", schemas=SCHEMAS,
                 openapi=_form_doc("Add a schedule from the page")),
        ApiRoute("/automation/schedules/{schedule}/enabled", switch_schedule, methods=["POST"],
                 name="form_schedule_switch", policy="admin", schemas=SCHEMAS,
                 openapi=_form_doc("Enable or disable a schedule from the page", "schedule")),
        ApiRoute("/automation/rules/{rule}/enabled", switch_rule, methods=["POST"],
                 name="form_rule_switch", policy="admin", schemas=SCHEMAS,
                 openapi=_form_doc("Enable or disable a rule from the page", "rule")),
    ]
