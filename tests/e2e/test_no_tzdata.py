"""``pinpanel serve`` on a system without a time zone database (no Debian ``tzdata``).

``PYTHONTZPATH`` points zoneinfo at an empty directory, as on a minimal image: the server
starts with its schedules in UTC, and a configured ``[location] timezone`` is one clear
config error (exit 3) naming the package, not a traceback.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.support import ServerFactory, free_port, run_cli


def no_database(tmp_path: Path) -> dict[str, str]:
    # zoneinfo would fall back to the tzdata wheel; it must not be there to hide the gap.
    assert importlib.util.find_spec("tzdata") is None
    empty = tmp_path / "zoneinfo"
    empty.mkdir()
    return {"PYTHONTZPATH": str(empty)}


def test_the_server_starts_in_utc_without_a_tz_database(make_server: ServerFactory,
                                                         tmp_path: Path) -> None:
    server = make_server(None, auth=False, env=no_database(tmp_path))
    with server.client() as http:
        listed = http.get("/api/v1/schedules")
        assert listed.status_code == 200, listed.text
        assert listed.json()["location"]["timezone"] == "UTC", listed.json()
        page = http.get("/automation")
        assert page.status_code == 200 and "<small>UTC; at: HH:MM" in page.text, page.text
        assert http.post("/api/v1/pins/18/on").json()["state"] is True


def test_a_configured_zone_without_a_tz_database_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "pinpanel.toml"
    config.write_text('[location]\nlatitude = 52.52\nlongitude = 13.405\n'
                      'timezone = "Europe/Berlin"\n')
    env = no_database(tmp_path)
    started = run_cli("serve", "--host", "127.0.0.1", "--port", str(free_port()),
                      "--no-auth", "--config", str(config), "--data-dir",
                      str(tmp_path / "data"), env=env, timeout=60)
    assert started.returncode == 3, started.stderr
    assert "Traceback" not in started.stderr
    assert "location.timezone: 'Europe/Berlin' cannot be loaded: this system has no time " \
           "zone database" in started.stderr, started.stderr
    assert "install Debian's tzdata package (apt-get install tzdata)" in started.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
