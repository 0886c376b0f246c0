"""The HomeKit page in real Chromium, over a fake bridge: an admin signs in, follows the
link, sees the setup code and a QR code that scans (zbarimg reads the X-HM:// payload off
a screenshot), and unpairs a controller with the plain form."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.browser.test_audit import CONTRASTS
from tests.fake_homekit import FakeHomeKit, served
from tests.inprocess import AppFactory
from tests.support import log_in

CONFIG = """
[[pins]]
pin = 18
name = "Garden lights"
"""
PHONE = "6A5E3C1B-0F7D-4D2C-9E8A-1B2C3D4E5F60"
TABLET = "11111111-2222-3333-4444-555555555555"


def scan(png: bytes, tmp_path: Path) -> str:
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg (Debian's zbar-tools) is needed: scripts/test installs it"
    path = tmp_path / "qr.png"
    path.write_bytes(png)
    done = subprocess.run([zbarimg, "--quiet", "--raw", str(path)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_admin_sees_the_code_scans_the_qr_code_and_unpairs(
        make_app: AppFactory, page: Any, tmp_path: Path) -> None:
    bridge = FakeHomeKit(pairings={PHONE: True, TABLET: False})
    app = make_app(CONFIG, homekit=bridge)
    with served(app) as url:
        log_in(page, SimpleNamespace(url=url, token=app.token))  # type: ignore[arg-type]
        page.get_by_role("link", name="HomeKit").click()
        page.wait_for_url(url + "/homekit")
        assert page.locator(".hk-code").inner_text() == "031-45-154"
        assert page.locator(".hk-name").inner_text() == "pinpanel Garden"
        qr = page.locator(".hk-qr svg")
        assert qr.count() == 1
        assert scan(qr.screenshot(), tmp_path) == bridge.setup_uri()
        page.get_by_role("button", name=f"Unpair {TABLET}").click()
        page.wait_for_url(url + "/homekit")
        assert bridge.pairings == {PHONE: True} and bridge.unpaired == [TABLET]
        assert page.get_by_role("button", name=f"Unpair {TABLET}").count() == 0
        assert page.get_by_role("button", name=f"Unpair {PHONE}").count() == 1


def test_the_page_reads_in_light_and_dark_and_fits_a_320_px_phone(
        make_app: AppFactory, page: Any) -> None:
    app = make_app(CONFIG, homekit=FakeHomeKit(pairings={PHONE: True}))
    texts = ".hk-label figcaption, .hk-code, .hk-steps li, .hk-note, .hk-controllers li, h2, h3"
    with served(app) as url:
        log_in(page, SimpleNamespace(url=url, token=app.token))  # type: ignore[arg-type]
        page.set_viewport_size({"width": 320, "height": 640})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.goto(url + "/homekit")
            found = page.evaluate(CONTRASTS, texts)
            assert {"HomeKit setup code", "031-45-154"} <= {i["text"] for i in found}
            failing = [i for i in found if i["ratio"] < (
                3.0 if i["size"] >= 24 or (i["bold"] and i["size"] >= 18.66) else 4.5)]
            assert not failing, (scheme, failing)
            assert page.evaluate("document.documentElement.scrollWidth") <= 320
