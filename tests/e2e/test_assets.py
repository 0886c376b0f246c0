"""Static assets and compression over real HTTP (web/assets.py).

Versioned asset URLs are cached for a year, unversioned or outdated ones are revalidated;
text is gzip-compressed (with its entity tag made weak), the event stream never is, and the
page keeps its own headers (no-store, the security headers) when compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, ServerProcess

STATIC = REPO / "src" / "pinpanel" / "web" / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
ASSET = re.compile(r'(?:href|src)="(?:https?://[^/"]+)?(/static/[^"?]+)\?v=([0-9a-f]+)"')
GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    server = ServerProcess(tmp_path_factory.mktemp("assets") / "data").start()
    try:
        yield server
    finally:
        server.kill()


def assets_linked(server: ServerProcess) -> dict[str, str]:
    with server.client() as http:
        page = http.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    return dict(ASSET.findall(page.text))


def test_the_page_links_every_asset_by_its_contents_digest(server: ServerProcess) -> None:
    linked = assets_linked(server)
    assert {"/static/pinpanel.css", "/static/app.js", "/static/live.js",
            "/static/manifest.webmanifest", "/static/icons/icon.svg"} <= set(linked)
    for path, digest in linked.items():
        data = (STATIC / Path(path).relative_to("/static")).read_bytes()
        assert hashlib.sha256(data).hexdigest().startswith(digest), path


def test_a_versioned_asset_is_immutable_and_an_unversioned_one_revalidates(
        server: ServerProcess) -> None:
    linked = assets_linked(server)
    with httpx.Client(base_url=server.url, headers=IDENTITY) as http:
        for path, digest in linked.items():
            hit = http.get(path, params={"v": digest})
            assert hit.status_code == 200, path
            assert hit.headers["cache-control"] == IMMUTABLE, path
            for params in ({}, {"v": "0123456789ab"}):  # unversioned, or another version
                other = http.get(path, params=params)
                assert other.status_code == 200 and other.content == hit.content
                assert other.headers["cache-control"] == "no-cache", (path, params)
            again = http.get(path, headers={"If-None-Match": hit.headers["etag"]})
            assert again.status_code == 304
            assert again.headers["cache-control"] == "no-cache"
        # A module imported by another (live.js imports rowhistory.js) is unversioned.
        assert http.get("/static/rowhistory.js").headers["cache-control"] == "no-cache"
        missing = http.get("/static/nope.js", params={"v": "0123456789ab"})
        assert missing.status_code == 404 and "immutable" not in missing.headers.get(
            "cache-control", "")


def test_text_is_compressed_with_a_weak_etag_that_still_revalidates(
        server: ServerProcess) -> None:
    linked = assets_linked(server)
    with httpx.Client(base_url=server.url) as http:
        css = http.get("/static/pinpanel.css", params={"v": linked["/static/pinpanel.css"]},
                       headers=GZIP)
        assert css.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in css.headers["vary"].lower()
        assert css.headers["cache-control"] == IMMUTABLE
        assert css.text == (STATIC / "pinpanel.css").read_text()
        etag = css.headers["etag"]
        assert etag.startswith('W/"')
        plain = http.get("/static/pinpanel.css", headers=IDENTITY)
        assert "content-encoding" not in plain.headers
        assert plain.headers["etag"] == etag.removeprefix("W/")  # the same file, uncompressed
        for tag in (etag, plain.headers["etag"]):
            assert http.get("/static/pinpanel.css", headers={**GZIP, "If-None-Match": tag},
                            ).status_code == 304
        icon = http.get("/static/icons/icon-192.png", headers=GZIP)  # already compressed
        assert icon.status_code == 200 and "content-encoding" not in icon.headers


def test_the_page_and_json_are_compressed_and_keep_their_headers(
        server: ServerProcess) -> None:
    with server.client() as http:
        page = http.get("/", headers={**GZIP, "Accept": "text/html"})
        assert page.headers["content-encoding"] == "gzip"
        assert page.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert '<table class="pins"' in page.text and "\x00" not in page.text
        raw = http.build_request("GET", "/", headers={**GZIP, "Accept": "text/html"})
        streamed = http.send(raw, stream=True)
        try:
            body = b"".join(streamed.iter_raw())
        finally:
            streamed.close()
        html = gzip.decompress(body)  # the same page (but for its render time)...
        assert b'<table class="pins"' in html and abs(len(html) - len(page.content)) < 8
        assert len(body) * 3 < len(html)  # ...really smaller on the wire
        spec = http.get("/openapi.json", headers=GZIP)
        assert spec.headers["content-encoding"] == "gzip" and spec.json()["openapi"]
        small = http.get("/healthz", headers=GZIP)
        assert small.status_code == 200 and "content-encoding" not in small.headers


def test_the_event_stream_is_never_compressed(server: ServerProcess) -> None:
    with server.client() as http, http.stream(
            "GET", "/api/v1/events", headers={**GZIP, "Accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in stream.headers
        first = b""
        for chunk in stream.iter_raw():  # what is on the wire is the plain text at once
            first += chunk
            if b"\n\n" in first.split(b"event: snapshot", 1)[-1]:
                break
        assert b"event: snapshot" in first
