"""Backup while pins switch, restore into a fresh directory: a real server over HTTP.

Twenty clients toggle while one archive is downloaded from ``GET /api/v1/backup`` and
another is written by ``pinpanel backup``. Each is restored into a fresh directory and served
by a new process: the database passes ``PRAGMA integrity_check`` and holds every change
acknowledged before its backup began, gapless and chained.
"""

from __future__ import annotations

import io
import sqlite3
import tarfile
import time
from pathlib import Path

from pinpanel.store import DB_NAME
from tests.e2e.audit import all_history, assert_chained, assert_gapless, last_per_pin
from tests.e2e.test_durability import PINS, Ack, Stream
from tests.support import ServerFactory, ServerProcess, run_cli

CONFIG = "# the garage Pi\n[[pins]]\npin = 18\n[[pins]]\npin = 23\n[[pins]]\npin = 24\n"
#: A hang guard while waiting for the clients' progress, never a timing assertion.
PROGRESS_DEADLINE_S = 60.0


def wait_for_acks(stream: Stream, count: int) -> None:
    deadline = time.monotonic() + PROGRESS_DEADLINE_S
    while len(stream.all_acked) < count:
        assert not stream.refused, stream.refused
        assert time.monotonic() < deadline, f"only {len(stream.all_acked)} toggles answered"
        time.sleep(0.01)


def check_restored(server: ServerProcess, acked: list[Ack]) -> int:
    """The restored server holds every acknowledged change; returns its history's length."""
    with server.client() as http:
        rows = all_history(http)
        pins = {p["pin"]: p for p in http.get("/api/v1/pins").json()["pins"]}
    assert_gapless(rows)
    assert_chained(rows)
    by_seq = {row["seq"]: row for row in rows}
    for ack in acked:
        row = by_seq.get(ack.seq)
        assert row is not None, f"acknowledged seq {ack.seq} is missing from the backup"
        assert (row["pin"], row["new"]) == (ack.pin, ack.state), ack
    newest = last_per_pin(rows)
    for bcm in PINS:  # initial = restore: each pin as the backup last knew it
        assert pins[bcm]["state"] == newest[bcm]["new"], bcm
    return len(rows)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_backups_taken_while_twenty_clients_toggle_restore_every_acknowledged_change(
        make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(CONFIG)
    stream = Stream(server, clients=20).start()
    try:
        wait_for_acks(stream, 200)
        before_http = list(stream.all_acked)
        with server.client() as http:
            response = http.get("/api/v1/backup")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/gzip"
        assert response.headers["cache-control"] == "no-store"
        assert 'filename="pinpanel-backup-' in response.headers["content-disposition"]
        wait_for_acks(stream, len(before_http) + 200)  # still switching after the download
        before_cli = list(stream.all_acked)
        made = run_cli("backup", str(tmp_path / "cli.tar.gz"), "--data-dir",
                       str(server.data_dir), "--config", str(server.config_path))
        assert made.returncode == 0, made.stderr
        wait_for_acks(stream, len(before_cli) + 200)
    finally:
        stream.stop.set()
        stream.join()
    assert not stream.refused, stream.refused
    (tmp_path / "http.tar.gz").write_bytes(response.content)
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = tar.getnames()
        config = tar.extractfile("pinpanel.toml")
        assert config is not None and config.read().decode() == CONFIG
    assert names == ["manifest.json", DB_NAME, "pinpanel.toml"]

    for name, acked in (("http", before_http), ("cli", before_cli)):
        fresh = tmp_path / f"restored-{name}"
        done = run_cli("restore", str(tmp_path / f"{name}.tar.gz"), "--data-dir", str(fresh))
        assert done.returncode == 0, done.stderr
        assert integrity(fresh / DB_NAME) == "ok"
        restored = make_server(name=fresh.name)
        rows = check_restored(restored, acked)
        assert rows >= len(acked)
        restored.stop()
    # The server went on switching after each snapshot: none of that is in the first one.
    assert len(stream.all_acked) > len(before_cli) > len(before_http)


def test_the_backup_route_is_for_admins_only(make_server: ServerFactory) -> None:
    server = make_server()
    control = server.create_token("phone", "control")
    with server.client(control) as http:
        assert http.get("/api/v1/backup").status_code == 403
    with server.client(headers={"Authorization": ""}) as http:
        assert http.get("/api/v1/backup", headers={"Authorization": ""}).status_code == 401


def test_the_page_offers_the_download_to_admins_only(make_server: ServerFactory) -> None:
    server = make_server()
    reader = server.create_token("wall", "read")
    with server.client() as http:
        page = http.get("/").text
        assert '/api/v1/backup">' in page and "Download backup" in page
    with server.client(reader) as http:
        assert "Download backup" not in http.get("/").text


def _listing(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs for p in d.iterdir())


def test_restore_refuses_while_a_server_holds_the_data_dir(make_server: ServerFactory,
                                                           tmp_path: Path) -> None:
    server = make_server()
    with server.client() as http:
        assert http.post("/api/v1/pins/18/on").status_code == 200
        archive = tmp_path / "b.tar.gz"
        archive.write_bytes(http.get("/api/v1/backup").content)
        history = all_history(http)
    listing = _listing(server.data_dir, server.data_dir.parent)
    refused = run_cli("restore", str(archive), "--data-dir", str(server.data_dir))
    assert refused.returncode == 8, refused.stderr  # EXIT_DATA_DIR_IN_USE
    assert "another pinpanel" in refused.stderr
    assert _listing(server.data_dir, server.data_dir.parent) == listing
    with server.client() as http:  # the server never noticed
        assert all_history(http) == history
        assert http.get("/api/v1/pins/18").json()["state"] is True


def tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


def test_a_truncated_archive_is_refused_and_nothing_changes(make_server: ServerFactory,
                                                            tmp_path: Path) -> None:
    server = make_server()
    with server.client() as http:
        assert http.post("/api/v1/pins/23/on").status_code == 200
        data = http.get("/api/v1/backup").content
    server.stop()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])  # a download that broke off
    before = tree(tmp_path)
    refused = run_cli("restore", str(cut), "--data-dir", str(server.data_dir))
    assert refused.returncode == 1
    assert "damaged or truncated" in refused.stderr and "nothing was changed" in refused.stderr
    assert tree(tmp_path) == before
