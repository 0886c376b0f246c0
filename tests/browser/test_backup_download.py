"""The page's Download backup button: an admin's browser gets the archive; others see none."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from tests.support import ServerFactory, log_in


def test_an_admin_downloads_a_backup_from_the_page(make_server: ServerFactory, page: Any,
                                                   tmp_path: Path) -> None:
    server = make_server()
    log_in(page, server)  # the server's token is an admin one
    button = page.get_by_role("button", name="Download backup")
    with page.expect_download() as started:
        button.click()
    download = started.value
    assert download.suggested_filename.startswith("pinpanel-backup-")
    assert download.suggested_filename.endswith(".tar.gz")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with tarfile.open(saved, "r:gz") as tar:
        assert tar.getnames() == ["manifest.json", "pinpanel.sqlite3"]
        manifest = tar.extractfile("manifest.json")
        assert manifest is not None
        assert json.load(manifest)["format"] == "pinpanel-backup"


def test_a_control_login_sees_no_download_button(make_server: ServerFactory,
                                                 page: Any) -> None:
    server = make_server()
    log_in(page, server, server.create_token("phone", "control"))
    assert page.get_by_role("button", name="Toggle GPIO 18").count() == 1
    assert page.get_by_role("button", name="Download backup").count() == 0
