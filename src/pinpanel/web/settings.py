"""Pin settings for admins: ``GET``/``PUT /api/v1/settings`` and the ``/settings`` page.

Both edit the config file the server was started with, through the runtime's
:class:`~pinpanel.live_config.LiveConfig`: the same loader as the file checks the edit
(every problem at once; the API answers 422 with each problem's path, the page shows each
next to its field), the file is written with the user's comments kept, and the board applies
the new pins as a diff (untouched pins are not touched). The form offers every pin setting
declared in :mod:`pinpanel.config` (read off :data:`~pinpanel.config.PIN_SETTINGS`), so a new
kind's settings appear here without a change to this module. The page is plain forms (one
per pin, so each stays within ``server.max_body_bytes``), with the session's CSRF token as
every other form: it works without JavaScript.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pinpanel.config import MODE_NAMES, PIN_SETTINGS, Config, pin_keys
from pinpanel.config_file import Edit, pin_tables, toml_error
from pinpanel.errors import ConfigError
from pinpanel.live_config import LiveConfig, Outcome
from pinpanel.settings import Setting
from pinpanel.web.bodies import is_json, read_body
from pinpanel.web.context import actor_of
from pinpanel.web.openapi import html_response, json_response, problems, ref
from pinpanel.web.pages import TEMPLATES, page_context
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

#: A whole pin list is larger than a command: its own limit (still bounded).
MAX_SETTINGS_BYTES = 65_536
NO_STORE = {"Cache-Control": "no-store"}
_PATH = re.compile(r"^(?P<path>[A-Za-z_]+(?:\[\d+\])?(?:\.[A-Za-z0-9_]+)?(?:\[\d+\])?): ")


def _live(request: Request) -> LiveConfig:
    live: LiveConfig | None = request.app.state.settings
    if live is None:
        raise Problem(503, "settings can be edited only on a running server (pinpanel serve)")
    return live


def current(config: Config) -> dict[str, Any]:
    """The editable part of a config: each pin with the keys its mode takes."""
    return {
        "pins": [{k: v for k, v in table.items() if k in pin_keys(table["mode"])}
                 for table in pin_tables(config)],
        "interlocks": [list(group) for group in config.interlocks],
        "groups": [{"id": g.id, "name": g.name, "pins": list(g.pins)} for g in config.groups],
    }


def _field(setting: Setting) -> dict[str, Any]:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array"}[setting.kind]
    return {"name": setting.name, "type": kind, "default": setting.default,
            "help": setting.help, "choices": list(setting.choices or ()) or None,
            "minimum": setting.minimum, "maximum": setting.maximum,
            "modes": [m for m in MODE_NAMES if setting.name in pin_keys(m)]}


def split(problem: str) -> tuple[str, str]:
    """``"pins[2].pulse_ms: must be..."`` -> its path and what is wrong ("" if no path)."""
    match = _PATH.match(problem)
    return (match["path"], problem[match.end():]) if match else ("", problem)


def _outcome(outcome: Outcome) -> dict[str, Any]:
    applied = outcome.applied
    return {"path": str(outcome.path), "created": outcome.created,
            "added": list(applied.added), "reclaimed": list(applied.reclaimed),
            "edited": list(applied.edited), "removed": list(applied.removed),
            "restart_needed": list(outcome.restart_needed)}


async def _save(request: Request, edit: Edit) -> Outcome:
    """Save through the runtime; a value tomlkit cannot write is a 422 like the loader's."""
    live = _live(request)
    try:
        return await live.save(edit, actor_of(request, "settings"))
    except OSError as exc:  # a read-only file or directory (ProtectSystem=, a root-owned /etc)
        raise Problem(503, f"cannot write {live.path}: {exc.strerror}; nothing was changed "
                      "(the server's user must be able to write the file and its "
                      "directory)") from None
    except (TypeError, ValueError, toml_error()) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError([f"pins: cannot be written as TOML: {exc}"]) from None


# -- the API -------------------------------------------------------------------------------


async def get_settings(request: Request) -> Response:
    live = _live(request)
    return JSONResponse({"path": str(live.path), "exists": live.path.exists(),
                         **current(live.config), "fields": [_field(s) for s in PIN_SETTINGS]},
                        headers=NO_STORE)


def _edit_of(body: Any) -> Edit:
    """The body's shape (values are the loader's to judge); 422 names what is wrong."""
    if not isinstance(body, dict) or "pins" not in body:
        raise Problem(422, "body must be a JSON object with pins (and interlocks, groups)")
    unknown = set(body) - {"pins", "interlocks", "groups"}
    if unknown:
        raise Problem(422, f"unknown field {sorted(unknown)[0]!r}; expected pins, interlocks, "
                      "groups")
    pins, interlocks, groups = body["pins"], body.get("interlocks", []), body.get("groups")
    if not isinstance(pins, list) or not all(isinstance(p, dict) for p in pins):
        raise Problem(422, "pins must be a list of objects")
    if not isinstance(interlocks, list) or not all(
            isinstance(g, list) and all(isinstance(r, int | str) and not isinstance(r, bool)
                                        for r in g) for g in interlocks):
        raise Problem(422, "interlocks must be a list of lists of pins (BCM numbers or ids)")
    if groups is not None and (not isinstance(groups, list) or not all(
            isinstance(g, dict) for g in groups)):
        raise Problem(422, "groups must be a list of objects")
    for i, table in enumerate([*pins, *(groups or [])]):
        if _has_null(table):
            where = f"pins[{i}]" if i < len(pins) else f"groups[{i - len(pins)}]"
            raise Problem(422, f"{where}: null is not a value (leave the key out for its "
                          "default)")
    return Edit(pins=pins, interlocks=interlocks, groups=groups)


def _has_null(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


async def put_settings(request: Request) -> Response:
    if not is_json(request):
        raise Problem(415, "send the body as JSON with Content-Type: application/json")
    raw = await read_body(request, MAX_SETTINGS_BYTES)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, f"body is not valid JSON: {exc}") from None
    try:
        outcome = await _save(request, _edit_of(body))
    except ConfigError as exc:
        errors = [dict(zip(("path", "detail"), split(p), strict=True)) for p in exc.problems]
        raise Problem(422, f"the settings were refused ({len(errors)} problem"
                      f"{'s' if len(errors) != 1 else ''}); the file is unchanged",
                      errors=errors) from None
    return JSONResponse({**_outcome(outcome), **current(_live(request).config)},
                        headers=NO_STORE)


# -- the page --------------------------------------------------------------------------------


def _render(request: Request, *, status: int = 200, errors: dict[str, dict[str, str]] | None
            = None, general: list[str] | None = None, values: dict[str, dict[str, Any]]
            | None = None, saved: str = "", interlocks: str | None = None,
            group_values: dict[str, dict[str, str]] | None = None) -> Response:
    live = _live(request)
    config = current(live.config)
    forms = {str(t["pin"]): t for t in config["pins"]}
    forms.update(values or {})
    group_forms = {g["id"]: {"id": g["id"], "name": g["name"],
                             "pins": ", ".join(map(str, g["pins"]))} for g in config["groups"]}
    group_forms.update(group_values or {})
    context = page_context(
        request, live_path=str(live.path), exists=live.path.exists(), forms=forms,
        fields=[_field(s) for s in PIN_SETTINGS], modes=MODE_NAMES,
        interlocks=interlocks if interlocks is not None else "\n".join(
            ", ".join(map(str, g)) for g in config["interlocks"]),
        group_forms=group_forms, errors=errors or {}, general=general or [], saved=saved)
    return TEMPLATES.TemplateResponse(request, "settings.html", context, status_code=status,
                                      headers=NO_STORE)


async def settings_page(request: Request) -> Response:
    return _render(request, saved=request.query_params.get("saved", "")[:200])


def _from_form(form: Any) -> dict[str, Any]:
    """One pin's table from its form: its mode's keys, numbers as numbers where they parse
    (what does not parse goes to the loader as text, which names the field)."""
    mode = str(form.get("mode", "output"))
    table: dict[str, Any] = {}
    kinds = {s.name: s for s in PIN_SETTINGS}
    for key in pin_keys(mode) if mode in MODE_NAMES else ("pin", "mode"):
        setting = kinds[key]
        text = str(form.get(key, "")).strip()
        if setting.kind is bool:
            table[key] = key in form
        elif not text:
            continue  # empty: the default
        elif setting.kind is int:
            table[key] = int(text) if re.fullmatch(r"-?\d{1,12}", text) else text
        elif setting.kind is float:
            try:
                table[key] = float(text)
            except ValueError:
                table[key] = text
        else:
            table[key] = text
    return table


def _page_errors(exc: ConfigError, index: int, form_key: str,
                 ) -> tuple[dict[str, dict[str, str]], list[str]]:
    fields: dict[str, str] = {}
    general: list[str] = []
    for problem in exc.problems:
        path, detail = split(problem)
        prefix = f"pins[{index}]."
        if path.startswith(prefix):
            fields.setdefault(path[len(prefix):].split("[")[0], detail)
        elif path == f"pins[{index}]":
            general.append(detail)
        else:
            general.append(problem)
    return {form_key: fields}, general


async def save_pin(request: Request) -> Response:
    """One pin's form: edit the pin it names (``original``), or add one (``original`` new)."""
    form = await request.form()
    live = _live(request)
    tables = current(live.config)
    pins: list[dict[str, Any]] = tables["pins"]
    original = str(form.get("original", "new"))
    table = _from_form(form)
    index = next((i for i, p in enumerate(pins) if str(p["pin"]) == original), len(pins))
    pins = [*pins[:index], table, *pins[index + 1:]]
    try:
        outcome = await _save(request, Edit(pins, tables["interlocks"], None))
    except ConfigError as exc:
        errors, general = _page_errors(exc, index, original)
        return _render(request, status=422, errors=errors, general=general,
                       values={original: table})
    return _saved(request, outcome, f"{table.get('name') or 'GPIO ' + str(table.get('pin'))} "
                                    "saved")


async def remove_pin(request: Request) -> Response:
    form = await request.form()
    live = _live(request)
    tables = current(live.config)
    target = str(form.get("pin", ""))
    pins = [p for p in tables["pins"] if str(p["pin"]) != target]
    try:
        outcome = await _save(request, Edit(pins, tables["interlocks"], None))
    except ConfigError as exc:
        return _render(request, status=422, general=[f"GPIO {target} was not removed: "
                                                     + "; ".join(exc.problems)])
    return _saved(request, outcome, f"GPIO {target} removed")


async def save_interlocks(request: Request) -> Response:
    form = await request.form()
    live = _live(request)
    tables = current(live.config)
    groups: list[list[int | str]] = []
    for line in str(form.get("interlocks", "")).splitlines():
        refs = [r.strip() for r in line.replace(";", ",").split(",") if r.strip()]
        if refs:
            groups.append([int(r) if r.isdecimal() else r for r in refs])
    try:
        outcome = await _save(request, Edit(tables["pins"], groups, None))
    except ConfigError as exc:
        return _render(request, status=422, errors={"interlocks": {"interlocks": "; ".join(
            split(p)[1] if split(p)[0].startswith("interlocks") else p
            for p in exc.problems)}}, interlocks=str(form.get("interlocks", "")))
    return _saved(request, outcome, "interlocks saved")


def _refs(text: str) -> list[int | str]:
    """A comma-separated list of pins (BCM numbers or ids), as the file would hold it."""
    refs = [r.strip() for r in text.replace(";", ",").split(",") if r.strip()]
    return [int(r) if r.isdecimal() else r for r in refs]


async def save_group(request: Request) -> Response:
    """One group's form: edit the group it names (``original``), or add one (``new``)."""
    form = await request.form()
    tables = current(_live(request).config)
    groups: list[dict[str, Any]] = tables["groups"]
    original = str(form.get("original", "new"))
    typed = {k: str(form.get(k, "")).strip() for k in ("id", "name", "pins")}
    table: dict[str, Any] = {"id": typed["id"], "pins": _refs(typed["pins"])}
    if typed["name"]:
        table["name"] = typed["name"]
    index = next((i for i, g in enumerate(groups) if g["id"] == original), len(groups))
    groups = [*groups[:index], table, *groups[index + 1:]]
    try:
        outcome = await _save(request, Edit(tables["pins"], tables["interlocks"], groups))
    except ConfigError as exc:
        fields: dict[str, str] = {}
        general: list[str] = []
        prefix = f"groups[{index}]"
        for problem in exc.problems:
            path, detail = split(problem)
            key = path[len(prefix) + 1:].split("[")[0] if path.startswith(prefix + ".") else ""
            if key in typed:
                fields.setdefault(key, detail)
            else:
                general.append(detail if path == prefix else problem)
        return _render(request, status=422, errors={f"group-{original}": fields},
                       general=general, group_values={original: typed})
    return _saved(request, outcome, f"group {table['id']} saved")


async def remove_group(request: Request) -> Response:
    form = await request.form()
    tables = current(_live(request).config)
    target = str(form.get("group", ""))
    groups = [g for g in tables["groups"] if g["id"] != target]
    try:
        outcome = await _save(request, Edit(tables["pins"], tables["interlocks"], groups))
    except ConfigError as exc:
        return _render(request, status=422, general=[f"group {target} was not removed: "
                                                     + "; ".join(exc.problems)])
    return _saved(request, outcome, f"group {target} removed")


def _saved(request: Request, outcome: Outcome, what: str) -> Response:
    note = f"{what} in {outcome.path}"
    if outcome.created:
        note += " (a new file: pinpanel reads it on every start)"
    if outcome.restart_needed:
        note += f"; {', '.join(outcome.restart_needed)} apply at the next start"
    url = request.url_for("settings_page").include_query_params(saved=note)
    return RedirectResponse(str(url.path) + "?" + url.query, status_code=303)


WHY = {400: "Malformed JSON", 413: "Body too large", 415: "Body is not JSON",
       422: "Refused by the config loader: errors lists each problem with its path; the "
            "file is unchanged",
       503: "Not a running server (settings are edited only under pinpanel serve)"}
_PIN = {"type": "object", "required": ["pin"], "additionalProperties": True,
        "properties": {s.name: {"type": _field(s)["type"]} for s in PIN_SETTINGS}}
_REFS = {"type": "array", "items": {"type": "array", "items": {"type": ["integer", "string"]}}}
SCHEMAS: dict[str, Any] = {
    "SettingsBody": {"type": "object", "required": ["pins"], "additionalProperties": False,
                     "properties": {"pins": {"type": "array", "items": _PIN},
                                    "interlocks": _REFS,
                                    "groups": {"type": "array", "items": {"type": "object"}}}},
    "Settings": {"type": "object", "properties": {
        "path": {"type": "string"}, "pins": {"type": "array", "items": _PIN},
        "interlocks": _REFS, "groups": {"type": "array", "items": {"type": "object"}},
        "fields": {"type": "array", "items": {"type": "object"}}}},
}
_FORM = {"required": True, "content": {"application/x-www-form-urlencoded": {
    "schema": ref("SettingsForm")}}}
_FORM_SCHEMA = {"SettingsForm": {
    "type": "object", "required": ["csrf_token"], "description": "The page's form: one pin's "
    "settings (with original: its BCM number, or new), a pin to remove, or interlocks "
    "(one group a line), or a group (id, name, pins; original: its id, or new) or a group "
    "to remove", "properties": {"csrf_token": {"type": "string"}}}}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/api/v1/settings", get_settings, methods=["GET"], name="settings",
                 policy="admin", schemas={"Settings": SCHEMAS["Settings"]}, openapi={
                     "summary": "The pin settings (admin): pins, interlocks, groups, and "
                                "every pin setting with its type, bounds and modes",
                     "tags": ["settings"],
                     "responses": {"200": json_response(ref("Settings"), "The settings"),
                                   **problems(WHY, 503)}}),
        ApiRoute("/api/v1/settings", put_settings, methods=["PUT"], name="settings_put",
                 policy="admin", schemas=SCHEMAS, openapi={
                     "summary": "Replace the pins, interlocks and groups (admin)",
                     "description": "Checked by the loader of the config file (every problem "
                                    "at once), saved into the file with its comments kept, "
                                    "then applied live: pins whose settings did not change "
                                    "are not touched.",
                     "tags": ["settings"],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": ref("SettingsBody")}}},
                     "responses": {"200": json_response(ref("Settings"), "Saved and applied"),
                                   **problems(WHY, 400, 413, 415, 422, 503)}}),
        ApiRoute("/settings", settings_page, methods=["GET"], name="settings_page",
                 policy="admin", openapi={"summary": "The pin settings page (admin)",
                                          "tags": ["page"],
                                          "responses": {"200": html_response()}}),
        ApiRoute("/settings/pins", save_pin, methods=["POST"], name="settings_pin",
                 policy="admin", schemas=_FORM_SCHEMA, openapi={
                     "summary": "Save or add one pin (form)",
                                          "tags": ["page"], "requestBody": _FORM,
                                          "responses": {"303": {"description": "Saved"},
                                                        "422": html_response("Refused")}}),
        ApiRoute("/settings/pins/remove", remove_pin, methods=["POST"],
                 name="settings_pin_remove", policy="admin", schemas=_FORM_SCHEMA, openapi={
                     "summary": "Remove one pin (form)", "tags": ["page"],
                     "requestBody": _FORM, "responses": {"303": {"description": "Removed"},
                                                         "422": html_response("Refused")}}),
        ApiRoute("/settings/interlocks", save_interlocks, methods=["POST"],
                 name="settings_interlocks", policy="admin", schemas=_FORM_SCHEMA, openapi={
                     "summary": "Save the interlocks (form)", "tags": ["page"],
                     "requestBody": _FORM, "responses": {"303": {"description": "Saved"},
                                                         "422": html_response("Refused")}}),
        ApiRoute("/settings/groups", save_group, methods=["POST"], name="settings_group",
                 policy="admin", schemas=_FORM_SCHEMA, openapi={
                     "summary": "Save or add one group (form)", "tags": ["page"],
                     "requestBody": _FORM, "responses": {"303": {"description": "Saved"},
                                                         "422": html_response("Refused")}}),
        ApiRoute("/settings/groups/remove", remove_group, methods=["POST"],
                 name="settings_group_remove", policy="admin", schemas=_FORM_SCHEMA, openapi={
                     "summary": "Remove one group (form)", "tags": ["page"],
                     "requestBody": _FORM, "responses": {"303": {"description": "Removed"},
                                                         "422": html_response("Refused")}}),
    ]
