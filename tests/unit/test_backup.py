"""Backup archives: what they hold, and a restore that changes nothing unless all is well."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from pinpanel import backup, lock
from pinpanel.cli import build_parser, main
from pinpanel.cli.exits import EXIT_DATA_DIR_IN_USE, EXIT_ERROR, EXIT_OK
from pinpanel.errors import BackupError, DataDirInUseError
from pinpanel.store import DB_NAME, SCHEMA_VERSION, Store
from pinpanel.store.readings import ReadingStore
from tests.support import REPO
from tests.unit.test_store import history_seqs, make_real_db

CONFIG_TEXT = '[server]\nport = 9001\n\n[[pins]]\npin = 17\nid = "garage"  # my relay\n'


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and directory under ``root`` (and beside it): mode and content."""
    found: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.stat().st_mode
        found[str(path.relative_to(root))] = (mode, path.read_bytes() if path.is_file() else b"")
    return found


def repack(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def unpack(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def manifest_for(members: dict[str, bytes], **changes: object) -> bytes:
    manifest = {"format": backup.FORMAT, "format_version": backup.FORMAT_VERSION,
                "pinpanel_version": "test", "schema_version": SCHEMA_VERSION,
                "created_at": "2026-12-02T00:00:00Z", "config_source": None,
                "members": {name: {"size": len(data),
                                   "sha256": hashlib.sha256(data).hexdigest()}
                            for name, data in members.items()}, **changes}
    return json.dumps(manifest).encode()


@pytest.fixture
async def world(tmp_path: Path) -> dict[str, Path]:
    """A data dir with 300 changes, its config file, an archive of both, a restore target."""
    source = tmp_path / "source"
    await make_real_db(source)
    config = tmp_path / "pinpanel.toml"
    config.write_text(CONFIG_TEXT)
    archive = tmp_path / "backup.tar.gz"
    backup.write_private(backup.archive(source / DB_NAME, config), archive)
    target = tmp_path / "site" / "data"
    await make_real_db(target, changes=5)
    return {"source": source, "config": config, "archive": archive, "target": target,
            "site": tmp_path / "site"}


def test_the_archive_holds_a_manifest_the_database_and_the_config(
        world: dict[str, Path]) -> None:
    archive = world["archive"]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # token hashes inside
    with tarfile.open(archive, "r:gz") as tar:
        assert tar.getnames() == ["manifest.json", DB_NAME, "pinpanel.toml"]
    members = unpack(archive.read_bytes())
    manifest = json.loads(members["manifest.json"])
    assert manifest["format"] == "pinpanel-backup" and manifest["format_version"] == 1
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["pinpanel_version"]
    assert manifest["created_at"].endswith("Z")
    assert manifest["config_source"] == str(world["config"].resolve())
    for name in (DB_NAME, "pinpanel.toml"):
        assert manifest["members"][name] == {
            "size": len(members[name]), "sha256": hashlib.sha256(members[name]).hexdigest()}
    assert members["pinpanel.toml"].decode() == CONFIG_TEXT


def test_a_restore_into_a_fresh_dir_has_every_change(world: dict[str, Path],
                                                     tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "data"
    done = backup.restore(world["archive"], fresh)
    assert done.aside is None and done.data_dir == fresh
    assert history_seqs(fresh / DB_NAME) == history_seqs(world["source"] / DB_NAME)
    assert len(history_seqs(fresh / DB_NAME)) == 300
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE((fresh / DB_NAME).stat().st_mode) == 0o600
    assert not list(fresh.parent.glob(".*restoring*"))  # no staging left behind
    store = Store.open(fresh)  # the server can open it: WAL again, same last seq
    try:
        assert store.last_seq == 300
    finally:
        store.close()


def _readings_in(data_dir: Path) -> list[tuple[float, float | None]]:
    store = ReadingStore.open(data_dir)
    try:
        return [(p.at, p.value) for p in store.raw("tank", "temperature", 0, 4e9)]
    finally:
        store.close()


def _keep_readings(data_dir: Path, count: int) -> None:
    store = ReadingStore.open(data_dir)
    start = time.time() - 30 * count  # within the 48 hours raw readings are kept
    try:
        for i in range(count):
            store.add("tank", "temperature", start + 30 * i, 20.0 + i / 10)
        store.flush()
    finally:
        store.close()


def test_the_readings_are_backed_up_and_restored_with_the_state(world: dict[str, Path],
                                                               tmp_path: Path) -> None:
    _keep_readings(world["source"], 50)
    archive = tmp_path / "with-readings.tar.gz"
    backup.write_private(backup.archive(world["source"] / DB_NAME, world["config"]), archive)
    members = unpack(archive.read_bytes())
    assert set(members) == {"manifest.json", DB_NAME, "pinpanel.toml", backup.READINGS}
    fresh = tmp_path / "fresh" / "data"
    backup.restore(archive, fresh)
    assert stat.S_IMODE((fresh / backup.READINGS).stat().st_mode) == 0o600
    assert _readings_in(fresh) == _readings_in(world["source"])
    assert len(_readings_in(fresh)) == 50
    assert len(history_seqs(fresh / DB_NAME)) == 300


def test_the_homekit_bridge_is_backed_up_and_restored_as_the_same_bridge(
        world: dict[str, Path], tmp_path: Path) -> None:
    bridge = b'{"mac": "7B:1F:F6:9E:A6:E6", "pincode": "629-46-004", "paired_clients": {}}'
    (world["source"] / "homekit.state").write_bytes(bridge)
    archive = tmp_path / "with-homekit.tar.gz"
    backup.write_private(backup.archive(world["source"] / DB_NAME, world["config"]), archive)
    assert unpack(archive.read_bytes())["homekit.state"] == bridge
    done = backup.restore(archive, world["target"])
    restored = world["target"] / "homekit.state"
    assert restored.read_bytes() == bridge  # same identity, keys and pairings
    assert stat.S_IMODE(restored.stat().st_mode) == 0o600  # its private key inside
    assert done.aside is not None and not (done.aside / "homekit.state").exists()


def test_a_damaged_readings_database_is_refused_and_nothing_changes(
        world: dict[str, Path], tmp_path: Path) -> None:
    _keep_readings(world["source"], 2000)
    members = unpack(backup.archive(world["source"] / DB_NAME, None))
    readings = bytearray(members[backup.READINGS])
    readings[4096 + 8: 4096 + 400] = os.urandom(392)  # scribble over a b-tree page
    content = {DB_NAME: members[DB_NAME], backup.READINGS: bytes(readings)}
    bad = tmp_path / "bad-readings.tar.gz"
    bad.write_bytes(repack({"manifest.json": manifest_for(content), **content}))
    _refused(world, bad, "readings database is not usable")


def test_a_restore_keeps_the_old_data_dir_aside(world: dict[str, Path]) -> None:
    target = world["target"]
    old = tree(target)
    done = backup.restore(world["archive"], target)
    assert done.aside is not None and done.aside.name.startswith("data.before-restore-")
    kept = tree(done.aside)
    assert kept.pop(lock.LOCK_NAME)  # the restore held the old dir's lock too
    assert kept == old
    assert len(history_seqs(target / DB_NAME)) == 300


def test_the_config_is_restored_only_when_asked_and_the_old_one_kept(
        world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    mine = world["site"] / "pinpanel.toml"
    mine.write_text("# the damaged card's config\n")
    assert main(["restore", str(world["archive"]), "--data-dir", str(world["target"]),
                 "--config", str(mine)]) == EXIT_OK
    assert mine.read_text() == "# the damaged card's config\n"  # not asked
    assert "--restore-config" in capsys.readouterr().out
    assert main(["restore", str(world["archive"]), "--data-dir", str(world["target"]),
                 "--config", str(mine), "--restore-config"]) == EXIT_OK
    assert mine.read_text() == CONFIG_TEXT  # comments and all, byte for byte
    (kept,) = world["site"].glob("pinpanel.toml.before-restore-*")
    assert kept.read_text() == "# the damaged card's config\n"


def _refused(world: dict[str, Path], archive: Path, match: str) -> None:
    before = tree(world["site"])
    with pytest.raises(BackupError, match=match):
        backup.restore(archive, world["target"])
    assert tree(world["site"]) == before  # not one byte, not one new file


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_a_truncated_archive_is_refused_and_nothing_changes(world: dict[str, Path],
                                                            tmp_path: Path,
                                                            keep: float) -> None:
    data = world["archive"].read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:int(len(data) * keep)])
    _refused(world, cut, "damaged or truncated|not a pinpanel backup")


def test_a_flipped_byte_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(world["archive"].read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    _refused(world, bad, "damaged")


def test_a_member_that_does_not_match_its_checksum_is_refused(world: dict[str, Path],
                                                              tmp_path: Path) -> None:
    members = unpack(world["archive"].read_bytes())
    members["pinpanel.toml"] = b"[server]\nport = 1\n"  # the manifest still has the old sum
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(repack(members))
    _refused(world, bad, "pinpanel.toml does not match its checksum")


def test_a_database_failing_integrity_check_is_refused(world: dict[str, Path],
                                                       tmp_path: Path) -> None:
    members = unpack(world["archive"].read_bytes())
    db = bytearray(members[DB_NAME])
    db[4096 * 3 + 8: 4096 * 3 + 200] = os.urandom(192)  # scribble over a b-tree page
    content = {DB_NAME: bytes(db)}
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(repack({"manifest.json": manifest_for(content), **content}))
    _refused(world, bad, "database is not usable")


def test_a_newer_schema_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    members = unpack(world["archive"].read_bytes())
    newer = tmp_path / "newer.sqlite3"
    newer.write_bytes(members[DB_NAME])
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    content = {DB_NAME: newer.read_bytes()}
    # Said by the manifest, or only by the database itself: refused either way.
    for name, manifest in (("a", manifest_for(content, schema_version=SCHEMA_VERSION + 1)),
                           ("b", manifest_for(content))):
        bad = tmp_path / f"{name}.tar.gz"
        bad.write_bytes(repack({"manifest.json": manifest, **content}))
        _refused(world, bad, "newer than this pinpanel knows")


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "extra.txt"])
def test_an_unexpected_member_is_refused(world: dict[str, Path], tmp_path: Path,
                                         name: str) -> None:
    members = unpack(world["archive"].read_bytes())
    members[name] = b"x"
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(repack(members))
    _refused(world, bad, "never does")


def test_an_archive_without_a_manifest_is_not_a_backup(world: dict[str, Path],
                                                       tmp_path: Path) -> None:
    members = unpack(world["archive"].read_bytes())
    del members["manifest.json"]
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(repack(members))
    _refused(world, bad, "not a pinpanel backup")


def test_restore_refuses_a_data_dir_that_a_server_holds(world: dict[str, Path]) -> None:
    with lock.hold(world["target"]):
        before = tree(world["site"])
        with pytest.raises(DataDirInUseError):
            backup.restore(world["archive"], world["target"])
        assert tree(world["site"]) == before


def test_the_commands_exit_codes(world: dict[str, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "again.tar.gz"
    assert main(["backup", str(out), "--data-dir", str(world["source"])]) == EXIT_OK
    assert "pinpanel.toml" not in unpack(out.read_bytes())  # no config given: none inside
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(out.read_bytes()[:100])
    assert main(["restore", str(cut), "--data-dir", str(world["target"])]) == EXIT_ERROR
    assert "damaged or truncated" in capsys.readouterr().err
    with lock.hold(world["target"]):
        assert main(["restore", str(out), "--data-dir",
                     str(world["target"])]) == EXIT_DATA_DIR_IN_USE
    assert main(["backup", str(out), "--data-dir", str(tmp_path / "none")]) == EXIT_ERROR
    assert "no state database" in capsys.readouterr().err


def readme_units() -> dict[str, str]:
    """The systemd units the README gives, by the file name on their first line."""
    text = (REPO / "README.md").read_text()
    units = {}
    for block in re.findall(r"```ini\n(.*?)```", text, re.S):
        first = block.splitlines()[0]
        if first.startswith("# /etc/systemd/system/pinpanel-backup."):
            units[first.rsplit("/", 1)[1]] = block
    return units


def test_the_readme_nightly_timer_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    units = readme_units()
    assert set(units) == {"pinpanel-backup.service", "pinpanel-backup.timer"}
    service = units["pinpanel-backup.service"]
    assert "Type=oneshot" in service and "User=pinpanel" in service
    assert " backup --config /etc/pinpanel/pinpanel.toml" in service
    assert "OnCalendar=" in units["pinpanel-backup.timer"]
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in sorted(units))],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_readme_backup_command_line_is_what_the_shell_runs() -> None:
    """systemd turns $$ into $ and %% into %; the shell then names today's archive."""
    line = next(x for x in readme_units()["pinpanel-backup.service"].splitlines()
                if x.startswith("ExecStart="))
    command = line.removeprefix("ExecStart=").replace("$$", "$").replace("%%", "%")
    script = shlex.split(command)[2]
    argv = shlex.split(script.replace("$(date +%F)", "2026-12-02"))
    assert argv[1:3] == ["backup", "--config"]
    assert argv[-1] == "/var/lib/pinpanel-backups/pinpanel-2026-12-02.tar.gz"
    parsed = build_parser("backup").parse_args(argv[1:])
    assert parsed.data_dir == Path("/var/lib/pinpanel")


def test_restored_as_root_the_files_belong_to_the_old_dirs_owner(
        world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """sudo pinpanel restore on the service's dir: the service's user must open all of it."""
    old = world["target"].stat()
    chowned: dict[str, tuple[int, int]] = {}
    monkeypatch.setattr(backup.os, "geteuid", lambda: 0)
    monkeypatch.setattr(backup.os, "chown", lambda path, uid, gid: chowned.__setitem__(
        Path(path).name, (uid, gid)))
    done = backup.restore(world["archive"], world["target"])
    assert done.aside is not None
    staged = next(name for name in chowned if name.startswith(".data.restoring-"))
    assert chowned == {staged: (old.st_uid, old.st_gid), DB_NAME: (old.st_uid, old.st_gid),
                       lock.LOCK_NAME: (old.st_uid, old.st_gid)}
