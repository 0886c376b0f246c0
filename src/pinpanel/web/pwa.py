"""The page as an installable app: the service worker, served from the root.

A service worker controls only the URLs under the path it is served from, so ``sw.js``
cannot live under ``/static/`` and still control the page at ``/``. This route serves it
from the root with the package version written into it: a new pinpanel is a new worker
script, which makes browsers install it and drop the caches of the old one. The manifest
and icons are ordinary static files.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from pinpanel import __version__
from pinpanel.web.routing import ApiRoute

VERSION_MARK = "__PINPANEL_VERSION__"


@cache
def worker_script() -> bytes:
    text = resources.files("pinpanel.web").joinpath("static/sw.js").read_text()
    return text.replace(VERSION_MARK, __version__).encode()


async def service_worker(request: Request) -> Response:
    # no-cache: the browser checks for a new worker on every visit instead of trusting
    # an HTTP cache for up to a day.
    return Response(worker_script(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


def routes() -> list[ApiRoute]:
    return [ApiRoute("/sw.js", service_worker, methods=["GET"], name="service_worker",
                     policy="open", openapi={
                         "summary": "The page's service worker (caches the page's assets, never "
                                    "API answers)", "tags": ["page"],
                         "responses": {"200": {"description": "JavaScript",
                                               "content": {"text/javascript": {}}}}})]
