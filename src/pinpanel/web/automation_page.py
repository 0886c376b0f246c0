"""The automation page: schedules and rules, their next run, switches and add forms.

Plain HTML forms (url-encoded, with the session's CSRF field like every other form),
answered with a redirect back to the page, so it all works without JavaScript. The work is
the books' (:mod:`pinpanel.automation.schedules`, :mod:`pinpanel.automation.rulebook`):
a schedule or rule added here is the same record, checked the same way, as one posted to
``POST /api/v1/schedules`` or ``POST /api/v1/rules``. The rule form only turns its fields
into that JSON body; every refusal is the one checker's (:func:`~pinpanel.rule_config.
load_rule`), whose problem paths (``body.when.pin``, ``body.then[0].ms``) say which field
to show it beside. Editing needs an admin; reading needs read, as the API.
"""

from __future__ import annotations

import re
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
            values: dict[str, Any] | None = None, rule_values: dict[str, str] | None = None,
            rule_errors: dict[str, str] | None = None,
            rule_general: list[str] | None = None) -> Response:
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
        located=book.config.located, zone=book.place.timezone,
        rule_form=rule_values or {}, rule_errors=rule_errors or {},
        rule_general=rule_general or [], pins=board.config.pins,
        sensors=board.config.sensors, notifiers=board.config.notifiers,
        rule_schedules=sorted(rule_book.schedule_ids) if rule_book else [])
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


def _number(text: str, kind: type[int] | type[float]) -> int | float | str:
    """A number typed in a field, or the text as typed (the checker names what is wrong)."""
    try:
        return kind(text)
    except ValueError:
        return text


def _action_from_form(form: dict[str, str], prefix: str) -> dict[str, Any] | None:
    """One action (``then`` or ``otherwise``) from its fields; None if no target is picked
    for ``otherwise``, which is optional."""
    kind, _, target = form.get(f"{prefix}_target", "").partition(":")
    action = form.get(f"{prefix}_action", "on")
    text = {k: form.get(f"{prefix}_{k}", "").strip()
            for k in ("ms", "level", "fade_ms", "message", "title")}
    if kind == "scene":
        return {"scene": target}
    if kind == "notify":
        found = {"notify": target, "message": text["message"]}
        if text["title"]:
            found["title"] = text["title"]
        return found
    if kind == "group":
        return {"group": target, "action": action}
    if not target and prefix == "otherwise":
        return None
    body: dict[str, Any] = {"pins": [target] if target else [], "action": action}
    if action == "pulse" and text["ms"]:
        body["ms"] = _number(text["ms"], int)
    if action == "level":
        body["level"] = _number(text["level"], float) if text["level"] else None
        if text["fade_ms"]:
            body["fade_ms"] = _number(text["fade_ms"], int)
    return body


def rule_from_form(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The rule form's fields as a rule body (what ``POST /api/v1/rules`` takes).

    Nothing is checked here: a value that does not parse goes on as typed, so the checker
    refuses it with its own words, at its own path.
    """
    form = {k: v.strip() for k, v in fields}
    body: dict[str, Any] = {"id": form.get("id", "").lower()}
    if form.get("name"):
        body["name"] = form["name"]
    trigger = form.get("trigger", "pin")
    if trigger == "sensor":
        when: dict[str, Any] = {"sensor": form.get("sensor", "")}
        if form.get("reading"):
            when["reading"] = form["reading"]
        for key in ("above", "below"):
            if form.get(key):
                when[key] = _number(form[key], float)
    elif trigger == "schedule":
        when = {"schedule": form.get("schedule", "")}
    else:
        when = {"pin": form.get("when_pin", ""), "to": form.get("to", "on")}
    body["when"] = when
    for key in ("for", "cooldown", "unless_pin"):
        if form.get(key):
            body[key] = form[key]
    start, end = form.get("between_start", ""), form.get("between_end", "")
    if start or end:
        body["between"] = [start, end]
    then = _action_from_form(form, "then")
    body["then"] = [then]
    otherwise = _action_from_form(form, "otherwise")
    if otherwise is not None:
        body["otherwise"] = [otherwise]
    return body


#: A problem's path in a rule body -> the form field it is shown beside.
_RULE_FIELDS = {"id": "id", "name": "name", "when.pin": "when_pin", "when.to": "to",
                "when.sensor": "sensor", "when.reading": "reading", "when.above": "above",
                "when.below": "below", "when.schedule": "schedule", "for": "for",
                "cooldown": "cooldown", "between": "between", "unless_pin": "unless_pin"}
_ACTION_FIELDS = {"action": "action", "ms": "ms", "level": "level", "fade_ms": "fade_ms",
                  "message": "message", "title": "title"}
_PROBLEM = re.compile(r"^body(?:\.(?P<path>[A-Za-z_.\[\]0-9]+))?: (?P<detail>.*)$", re.S)


def rule_problem_fields(problems: list[str], trigger: str,
                        ) -> tuple[dict[str, str], list[str]]:
    """The checker's problems by form field, and those that belong to no one field."""
    fields: dict[str, str] = {}
    general: list[str] = []
    trigger_field = {"sensor": "above", "schedule": "schedule"}.get(trigger, "when_pin")
    for problem in problems:
        match = _PROBLEM.match(problem)
        path = (match["path"] or "") if match else ""
        detail = match["detail"] if match else problem
        field = _RULE_FIELDS.get(path)
        if field is None and path == "when":
            field = trigger_field
        if field is None:
            action = re.match(r"^(then|otherwise)(?:\[\d+\])?(?:\.([a-z_]+))?", path)
            if action:
                field = f"{action[1]}_{_ACTION_FIELDS.get(action[2] or '', 'target')}"
        if field is None:
            general.append(problem)
        else:
            fields.setdefault(field, detail)
    return fields, general


async def add_rule(request: Request) -> Response:
    fields = await _form(request)
    book = rule_routes.book_of(request)
    typed = {k: v for k, v in fields if k != "csrf_token"}
    try:
        await book.create(rule_from_form(fields), actor_of(request, "form").name)
    except AutomationError as exc:
        errors, general = rule_problem_fields(exc.problems, typed.get("trigger", "pin"))
        return _render(request, status=422, rule_values=typed, rule_errors=errors,
                       rule_general=general)
    except AutomationConflictError as exc:
        return _render(request, status=409, rule_values=typed, rule_errors={"id": str(exc)})
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


def _rule_form_doc() -> dict[str, Any]:
    doc = _form_doc("Add a rule from the page")
    doc["requestBody"] = {"required": True, "content": {FORM: {"schema": ref("RuleForm")}}}
    doc["description"] = ("The automation page's add-rule form (url-encoded, with "
                          "csrf_token), checked as POST /api/v1/rules checks a rule; answers "
                          "with a redirect to the page, or the page with each problem beside "
                          "its field and the values kept (422, 409).")
    return doc


SCHEMAS: dict[str, Any] = {"AutomationForm": {
    "type": "object", "description": "The automation page's form (url-encoded): id, name, "
    "kind (at or cron), when, days, target (pin:<id>, group:<id>, scene:<id>), action, ms; "
    "or enabled (on or off); and csrf_token"}, "RuleForm": {
    "type": "object", "description": "The automation page's rule form (url-encoded): id, "
    "name, trigger (pin, sensor or schedule) with when_pin and to, or sensor, reading, "
    "above, below, or schedule; optional for, between_start and between_end, unless_pin, "
    "cooldown; then_target (pin:<id>, group:<id>, scene:<id>, notify:<id>), then_action, "
    "then_ms, then_level, then_fade_ms, then_message, then_title; the same with "
    "otherwise_ (optional); and csrf_token"}}


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
        ApiRoute("/automation/rules", add_rule, methods=["POST"], name="form_rule_add",
                 policy="admin", schemas=SCHEMAS, openapi=_rule_form_doc()),
        ApiRoute("/automation/rules/{rule}/enabled", switch_rule, methods=["POST"],
                 name="form_rule_switch", policy="admin", schemas=SCHEMAS,
                 openapi=_form_doc("Enable or disable a rule from the page", "rule")),
    ]
