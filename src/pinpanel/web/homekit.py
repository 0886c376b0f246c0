"""HomeKit on the web, for admins: the pairing page, and the bridge's state over the API.

web never imports ``pinpanel.homekit``: the runtime hands the HomeKit adapter's bridge to
:func:`pinpanel.web.app.create_app` as a :class:`HomeKitPanel`, the seam both sides code
to, and ``None`` when the bridge is not running. The page then says why (``[homekit]`` is
off, or on but the bridge did not start) rather than being missing, so the link on the
index never leads to a 404.

``/homekit`` shows what the Home app asks for when adding the bridge: its name, the setup
code in the ``123-45-678`` look of a HomeKit label, and the standard setup QR code (the
``X-HM://`` payload the iPhone's camera reads). The QR code is an SVG drawn here, so the
page works without a script. It lists the paired controllers, each with a plain-form
Unpair button (303 back to the page). ``GET /api/v1/homekit`` and
``DELETE /api/v1/homekit/pairings/{id}`` are the same for scripts.

The setup code is a password for the house: every route here is ``admin`` (so guests and
read or control tokens never see it), its answers are ``no-store``, and nothing here logs
it (the access log has paths only, and no path carries it).
"""

from __future__ import annotations

import io
import re
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pinpanel.config.paths import HOMEKIT_STATE
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.openapi import html_response, json_body, json_response, problems, ref
from pinpanel.web.pages import TEMPLATES, page_context
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

NO_STORE = {"Cache-Control": "no-store"}
#: Where the HomeKit adapter keeps the bridge, in the data dir; deleting it is the full reset.
STATE_FILE = HOMEKIT_STATE
#: What the page and the API say when there is no bridge because ``[homekit]`` is off.
OFF = "HomeKit is off: set [homekit] enabled = true"
#: ... and when ``[homekit] enabled = true`` but the runtime has no bridge to hand over.
NOT_RUNNING = "HomeKit is enabled but the bridge is not running"


class HomeKitPanel(Protocol):
    """What the web needs of the HomeKit bridge; the HomeKit adapter's bridge implements it.

    Every method is called on the app's event loop, inside a request: the synchronous ones
    answer from memory (no disk, no network, no lock another thread holds for long), and
    :meth:`unpair` is awaited there. ``name`` and ``port`` are read-only here: a plain
    attribute or a property satisfies them.
    """

    @property
    def name(self) -> str:
        """The bridge's name as the Home app shows it (``[homekit] name``)."""
        ...

    @property
    def port(self) -> int:
        """The TCP port the HAP server listens on (``[homekit] port``)."""
        ...

    def setup_code(self) -> str:
        """The setup code, ``123-45-678`` (eight digits, any separators: shown normalised).

        A secret: the web shows it to admins only and never logs it.
        """
        ...

    def setup_uri(self) -> str:
        """The setup payload ``X-HM://`` + nine base-36 characters + the four-character
        setup id: what the QR code encodes (it holds the setup code)."""
        ...

    def controllers(self) -> list[tuple[str, bool, str]]:
        """The paired controllers, as (pairing id, admin, name): the id is the controller's
        HAP pairing identifier (a UUID string for an iPhone) exactly as :meth:`unpair` and
        :meth:`rename` take it back; admin is whether that pairing may add and remove
        others; name is what an admin called it ("" for none). Empty: unpaired."""
        ...

    async def rename(self, controller_id: str, name: str) -> bool:
        """Name a paired controller (HAP carries no names; the history shows this one as
        who switched a pin); "" removes the name. False when no pairing has that id."""
        ...

    async def unpair(self, controller_id: str) -> bool:
        """Remove one pairing, persist it and drop that controller's HAP sessions.

        True when it was removed; False (nothing changed) when no pairing has that id.
        Removing the last admin pairing may remove every pairing (HAP's rule): the web
        reads :meth:`controllers` again afterwards rather than assuming.
        """
        ...


def panel_of(request: Request) -> HomeKitPanel | None:
    panel: HomeKitPanel | None = getattr(request.app.state, "homekit", None)
    return panel


def display_code(code: str) -> str:
    """The code as HomeKit labels print it, ``123-45-678``, whichever way it was spelled."""
    digits = re.sub(r"\D", "", code)
    if len(digits) != 8:
        return code
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def setup_qr_svg(uri: str) -> str:
    """The setup payload as an inline SVG QR code, dark on light with its quiet zone.

    Always a full QR code: the payload is short and all upper-case, so left to choose,
    segno would make a Micro QR code, which the iPhone's camera does not read.
    """
    import segno

    out = io.BytesIO()
    segno.make_qr(uri, error="m").save(out, kind="svg", scale=5, border=4, xmldecl=False,
                                       svgns=True, dark="#000", light="#fff",
                                       title="HomeKit setup code")
    return out.getvalue().decode()


#: A controller's name: what a person calls their home's pairing ("Anna's iPhone").
NAME_MAX = 40


def controllers_json(panel: HomeKitPanel) -> list[dict[str, Any]]:
    return [{"id": pairing, "admin": admin, "name": name}
            for pairing, admin, name in panel.controllers()]


def _checked_name(value: object) -> str:
    """A controller's name as given, trimmed; a 422 :class:`Problem` for anything else."""
    if not isinstance(value, str):
        raise Problem(422, "field 'name' must be a string")
    name = " ".join(value.split())
    if len(name) > NAME_MAX or not name.isprintable():
        raise Problem(422, f"field 'name' must be at most {NAME_MAX} printable characters")
    return name


# -- the API -----------------------------------------------------------------------------------


def why_off(request: Request) -> str:
    """Why there is no bridge: ``[homekit]`` is off, or on and the bridge did not start."""
    return NOT_RUNNING if request.app.state.config.homekit.enabled else OFF


async def homekit_state(request: Request) -> Response:
    panel = panel_of(request)
    if panel is None:
        return JSONResponse({"enabled": False}, headers=NO_STORE)
    controllers = controllers_json(panel)
    return JSONResponse({"enabled": True, "name": panel.name, "port": panel.port,
                         "paired": bool(controllers), "controllers": controllers,
                         "setup_code": display_code(panel.setup_code()),
                         "setup_uri": panel.setup_uri()}, headers=NO_STORE)


async def _unpair(request: Request) -> str:
    """Remove the path's pairing; a :class:`Problem` 404 when it (or HomeKit) is not there."""
    panel = panel_of(request)
    pairing = str(request.path_params["id"])
    if panel is None:
        raise Problem(404, why_off(request))
    if not await panel.unpair(pairing):
        raise Problem(404, f"no HomeKit pairing {pairing!r}")
    return pairing


async def delete_pairing(request: Request) -> Response:
    await _unpair(request)
    return Response(status_code=204)


async def _rename(request: Request, value: object) -> dict[str, Any]:
    """Name the path's pairing; its controller as the API lists it."""
    panel = panel_of(request)
    pairing = str(request.path_params["id"])
    if panel is None:
        raise Problem(404, why_off(request))
    name = _checked_name(value)
    if not await panel.rename(pairing, name):
        raise Problem(404, f"no HomeKit pairing {pairing!r}")
    return next(c for c in controllers_json(panel) if c["id"] == pairing)


async def put_pairing(request: Request) -> Response:
    body = expect_object(await read_json(request), {"name": str}, required=("name",))
    return JSONResponse(await _rename(request, body["name"]), headers=NO_STORE)


# -- the page ----------------------------------------------------------------------------------


def _render(request: Request, status: int = 200, **extra: Any) -> Response:
    panel = panel_of(request)
    bridge = None
    if panel is not None:
        uri = panel.setup_uri()
        bridge = {"name": panel.name, "port": panel.port,
                  "code": display_code(panel.setup_code()), "uri": uri,
                  "qr": setup_qr_svg(uri), "controllers": controllers_json(panel),
                  "state_file": request.app.state.config.server.data_path / STATE_FILE}
    context = page_context(request, bridge=bridge, off=why_off(request),
                           not_running=NOT_RUNNING, **extra)
    headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
    return TEMPLATES.TemplateResponse(request, "homekit.html", context, status_code=status,
                                      headers=headers)


async def homekit_page(request: Request) -> Response:
    return _render(request)


async def homekit_rename(request: Request) -> Response:
    form = await request.form()
    try:
        await _rename(request, form.get("name", ""))
    except Problem as exc:
        return _render(request, exc.status, error=exc.detail)
    return RedirectResponse(request.url_for("homekit_page").path, status_code=303,
                            headers=NO_STORE)


async def homekit_unpair(request: Request) -> Response:
    try:
        await _unpair(request)
    except Problem as exc:
        return _render(request, exc.status, error=exc.detail)
    return RedirectResponse(request.url_for("homekit_page").path, status_code=303,
                            headers=NO_STORE)


# -- the routes and their document ---------------------------------------------------------

WHY = {404: "HomeKit is off (or its bridge is not running), or no pairing has that id",
       422: f"The body is not {{\"name\": string}} or the name has more than {NAME_MAX} "
            "printable characters"}
SCHEMAS: dict[str, Any] = {
    "HomeKit": {
        "type": "object", "required": ["enabled"],
        "description": "The HomeKit bridge; only enabled (false) while it is not running "
                       "([homekit] off, or on and the bridge failed to start)",
        "properties": {
            "enabled": {"type": "boolean"},
            "name": {"type": "string", "description": "The bridge's name in the Home app"},
            "port": {"type": "integer", "description": "The HAP TCP port"},
            "paired": {"type": "boolean", "description": "Whether any controller is paired"},
            "controllers": {"type": "array", "items": ref("HomeKitController")},
            "setup_code": {"type": "string", "pattern": r"^\d{3}-\d{2}-\d{3}$",
                           "description": "The setup code (a secret: admins only)"},
            "setup_uri": {"type": "string", "pattern": "^X-HM://",
                          "description": "The setup QR code's payload (holds the code)"}}},
    "HomeKitController": {
        "type": "object", "required": ["id", "admin", "name"],
        "properties": {"id": {"type": "string", "description": "The pairing id"},
                       "admin": {"type": "boolean",
                                 "description": "An admin pairing (may add others)"},
                       "name": {"type": "string", "maxLength": NAME_MAX,
                                "description": "What an admin called it (empty: unnamed); "
                                               "the history's client for its changes"}}},
    "HomeKitControllerName": {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "maxLength": NAME_MAX,
                                "description": "The controller's name; empty removes it"}}},
}


def routes() -> list[ApiRoute]:
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "A pairing id, as GET /api/v1/homekit lists them"}
    return [
        ApiRoute("/api/v1/homekit", homekit_state, methods=["GET"], name="homekit",
                 policy="admin", schemas=SCHEMAS, openapi={
                     "summary": "The HomeKit bridge (admin): name, port, pairings and the "
                                "setup code",
                     "tags": ["homekit"],
                     "responses": {"200": json_response(ref("HomeKit"), "The bridge")}}),
        ApiRoute("/api/v1/homekit/pairings/{id}", delete_pairing, methods=["DELETE"],
                 name="homekit_pairing_delete", policy="admin", openapi={
                     "summary": "Unpair a HomeKit controller (admin)", "tags": ["homekit"],
                     "parameters": [id_param],
                     "responses": {"204": {"description": "Unpaired"}, **problems(WHY, 404)}}),
        ApiRoute("/api/v1/homekit/pairings/{id}", put_pairing, methods=["PUT"],
                 name="homekit_pairing_put", policy="admin", openapi={
                     "summary": "Name a HomeKit controller (admin)", "tags": ["homekit"],
                     "parameters": [id_param],
                     "requestBody": json_body("HomeKitControllerName"),
                     "responses": {"200": json_response(ref("HomeKitController"),
                                                        "The controller, named"),
                                   **problems(WHY, 404, 422)}}),
        ApiRoute("/homekit", homekit_page, methods=["GET"], name="homekit_page",
                 policy="admin", openapi={
                     "summary": "The HomeKit page (admin): setup code, QR code, pairings",
                     "tags": ["page"], "responses": {"200": html_response()}}),
        ApiRoute("/homekit/pairings/{id}/name", homekit_rename, methods=["POST"],
                 name="homekit_rename", policy="admin", openapi={
                     "summary": "Name a HomeKit controller from the page (admin)",
                     "tags": ["page"], "parameters": [id_param],
                     "responses": {"303": {"description": "Back to the HomeKit page"},
                                   "404": html_response("HomeKit is off, or no such pairing"),
                                   "422": html_response("The name is too long")}}),
        ApiRoute("/homekit/pairings/{id}/unpair", homekit_unpair, methods=["POST"],
                 name="homekit_unpair", policy="admin", openapi={
                     "summary": "Unpair a HomeKit controller from the page (admin)",
                     "tags": ["page"], "parameters": [id_param],
                     "responses": {"303": {"description": "Back to the HomeKit page"},
                                   "404": html_response("HomeKit is off, or no such pairing")}}),
    ]
