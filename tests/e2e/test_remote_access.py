"""The README's remote-access recipes work as written: Tailscale Serve and Cloudflare Tunnel.

Each recipe's config block is read from the README and served in process; requests arrive
from loopback (where tailscaled and cloudflared connect from) carrying the headers each
tunnel sets, as their sources and documentation describe them. The browser's host, scheme
and address are what pinpanel sees; another host name is refused.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from pinpanel import auth, runtime
from pinpanel.config import parse, with_overrides
from pinpanel.web.app import create_app
from tests.support import REPO

README = (REPO / "README.md").read_text()


def recipe(title: str) -> str:
    """The first toml block after the README paragraph that starts with ``**title**``."""
    after = README[README.index(f"**{title}**"):]
    match = re.search(r"```toml\n(.*?)```", after, re.S)
    assert match, title
    return match.group(1)


#: What each tunnel sends on from a visitor at 203.0.113.9 (Cloudflare appends to a forged
#: X-Forwarded-For; tailscaled replaces it).
TUNNELS = {
    "Tailscale": ("garage-pi.tail1234.ts.net", {
        "Host": "127.0.0.1:8080", "X-Forwarded-Host": "garage-pi.tail1234.ts.net",
        "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}),
    "Cloudflare Tunnel": ("pins.example.org", {
        "Host": "pins.example.org", "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "198.51.100.66, 203.0.113.9", "CF-Connecting-IP": "203.0.113.9"}),
}


@pytest.fixture(params=sorted(TUNNELS))
async def served(request: pytest.FixtureRequest,
                 tmp_path: Path) -> AsyncIterator[tuple[str, Starlette]]:
    title: str = request.param
    config = parse(tomllib.loads(recipe(title)), f"README {title}")
    assert config.server.host == "127.0.0.1"
    config = with_overrides(config, server__data_dir=str(tmp_path / "data"),
                            gpio__backend="simulated")
    async with runtime.opened(config) as opened:
        app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry)
        app.state.token = auth.create_token(opened.store, "admin", "admin")
        yield title, app


def tunnel(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 41000)),
                             base_url="http://127.0.0.1:8080")


async def test_a_browser_through_the_tunnel_logs_in_over_https(
        served: tuple[str, Starlette]) -> None:
    title, app = served
    name, headers = TUNNELS[title]
    async with tunnel(app) as client:
        login = await client.post("/login", data={"token": app.state.token},
                                  headers={**headers, "Origin": f"https://{name}"})
        assert login.status_code == 303, login.text
        assert "; secure" in login.headers["set-cookie"].lower()
        bearer = {**headers, "Authorization": f"Bearer {app.state.token}"}
        assert (await client.post("/api/v1/pins/18/on", headers=bearer)).status_code == 200
        rows = (await client.get("/api/v1/history", headers=bearer)).json()["items"]
    assert rows[0]["client"] == "203.0.113.9"  # the visitor, never the forged entry


async def test_another_host_name_through_the_tunnel_is_refused(
        served: tuple[str, Starlette]) -> None:
    title, app = served
    _, headers = TUNNELS[title]
    forged = {**headers, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    async with tunnel(app) as client:
        assert (await client.get("/healthz", headers=forged)).status_code == 400


async def test_the_command_line_on_the_pi_still_gets_in(served: tuple[str, Starlette]) -> None:
    _, app = served
    async with tunnel(app) as client:
        pins = await client.get("/api/v1/pins", headers={
            "Host": "localhost:8080", "Authorization": f"Bearer {app.state.token}"})
    assert pins.status_code == 200


def test_the_readme_warns_against_port_forwarding() -> None:
    assert "**Do not forward port 8080 on your router**" in README
    assert "sudo tailscale serve --bg 8080" in README and "never `tailscale funnel`" in README
