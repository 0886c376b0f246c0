"""One archive that brings a Pi back: a consistent database snapshot and its config file.

An SD card dies with the pins' states, the history and the tokens on it, so ``GET
/api/v1/backup`` and ``pinpanel backup FILE`` both give one file to keep elsewhere, and
``pinpanel restore FILE`` puts it back. The archive is a plain ``tar.gz`` (any ``tar`` can
open it) of:

* ``manifest.json``: the format, pinpanel's version, the database's schema version, when it
  was made, where the config came from, and each other member's size and SHA-256;
* ``pinpanel.sqlite3``: a snapshot made with SQLite's online backup while the server runs
  (:func:`pinpanel.store.snapshot`), never a copy of the live file;
* ``readings.sqlite3``: a snapshot of the sensors' readings and rollups the same way, if
  the Pi keeps any (:mod:`pinpanel.store.readings`; a year of them is worth keeping too);
* ``pinpanel.toml``: the config file the server was started with, if it had one;
* ``homekit.state``: the HomeKit bridge's identity, keys, pairings, setup code and accessory
  ids, if it has any, so a restored Pi is the same bridge to the Home app (no new pairing,
  rooms and automations kept). It holds the bridge's private key: the archive is a secret,
  as it already was for the config's broker password.

A restore changes nothing until everything has been checked: the gzip stream to its end
(a truncated download fails there), every checksum, ``PRAGMA integrity_check`` on each
staged database and its schema version (never newer than this pinpanel's). Only then, holding
the data directory's lock (so never under a running server), the old directory is renamed
aside with a timestamp and the staged one takes its place: two renames on one file system,
so a crash leaves either the old directory or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pinpanel import __version__, lock
from pinpanel.config import Config
from pinpanel.config.paths import HOMEKIT_STATE
from pinpanel.errors import BackupError, StoreError
from pinpanel.store import (
    DB_NAME,
    SCHEMA_VERSION,
    STATE_DATABASE,
    DatabaseKind,
    snapshot,
    verify_file,
)
from pinpanel.store import readings as readingstore

FORMAT = "pinpanel-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = DB_NAME
CONFIG = "pinpanel.toml"
READINGS = readingstore.DB_NAME
READINGS_DATABASE = DatabaseKind("a pinpanel readings database", readingstore.SCHEMA_VERSION,
                                 readingstore.TABLES)
HOMEKIT = HOMEKIT_STATE
_MEMBERS = (DATABASE, CONFIG, READINGS, HOMEKIT)
#: A manifest larger than this is not ours (it lists two files).
_MANIFEST_MAX = 64 * 1024


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def file_name(moment: datetime | None = None) -> str:
    """The name a download is saved under: ``pinpanel-backup-20261202T184300Z.tar.gz``."""
    return f"pinpanel-backup-{_stamp(moment or datetime.now(UTC))}.tar.gz"


def config_file(config: Config) -> Path | None:
    """The file ``config`` was loaded from, if it came from one that is still there."""
    if config.source in ("defaults", "config"):
        return None
    path = Path(config.source)
    return path if path.is_file() else None


def archive(db_path: Path, config_path: Path | None, *, now: datetime | None = None) -> bytes:
    """The archive of the database at ``db_path`` (live or not), the readings database
    beside it (if there is one) and the config file."""
    import tarfile  # here, not with the module: a server that never backs up skips it

    moment = now or datetime.now(UTC)
    members = {DATABASE: snapshot(db_path)}
    readings = db_path.with_name(READINGS)
    if readings.is_file():
        members[READINGS] = snapshot(readings, READINGS_DATABASE)
    with contextlib.suppress(FileNotFoundError):  # written whole and renamed: never torn
        members[HOMEKIT] = db_path.with_name(HOMEKIT).read_bytes()
    if config_path is not None:
        try:
            members[CONFIG] = config_path.read_bytes()
        except OSError as exc:
            raise BackupError(f"cannot read the config file {config_path}: "
                              f"{exc.strerror}") from exc
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pinpanel_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "created_at": moment.astimezone(UTC).isoformat(timespec="seconds").replace(
            "+00:00", "Z"),
        "config_source": str(config_path.resolve()) if config_path else None,
        "members": {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    for name, data in members.items()},
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in {MANIFEST: json.dumps(manifest, indent=2).encode() + b"\n",
                           **members}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(moment.timestamp())
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=int(moment.timestamp()))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def write_private(data: bytes, dest: Path, *, like: Path | None = None) -> None:
    """Write ``data`` to ``dest`` atomically and durably: 0600 (an archive holds token
    hashes), or with the mode and owner of ``like`` (the file it replaces)."""
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            if like is not None and like.exists():
                info = like.stat()
                os.fchmod(fd, info.st_mode & 0o777)
                if os.geteuid() == 0:
                    os.fchown(fd, info.st_uid, info.st_gid)
        finally:
            os.close(fd)
        tmp.replace(dest)
        _sync_dir(dest.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BackupError(f"cannot write {dest}: {exc.strerror}") from exc


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Contents:
    """An archive's members, every checksum verified."""

    manifest: dict[str, Any]
    database: bytes
    config: bytes | None
    readings: bytes | None = None
    homekit: bytes | None = None


def read(path: Path) -> Contents:
    """The archive at ``path``, checked to its end; BackupError saying what is wrong."""
    import tarfile  # here, not with the module: a server that never backs up skips it

    try:
        packed = path.read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from exc
    damaged = f"{path} is damaged or truncated"
    try:
        raw = gzip.decompress(packed)  # to the end: a cut-off file fails here
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            found: dict[str, bytes] = {}
            for member in tar.getmembers():
                if not member.isfile() or member.name not in (MANIFEST, *_MEMBERS):
                    raise BackupError(f"{path} holds {member.name!r}, which a pinpanel "
                                      "backup never does")
                if member.name in found:
                    raise BackupError(f"{path} holds {member.name!r} twice")
                if member.name == MANIFEST and member.size > _MANIFEST_MAX:
                    raise BackupError(f"{path}: the manifest is too large to be pinpanel's")
                handle = tar.extractfile(member)
                if handle is None:  # never for a regular file; refused all the same
                    raise BackupError(f"{path}: {member.name} cannot be read")
                found[member.name] = handle.read()
    except (EOFError, OSError, tarfile.TarError, zlib.error) as exc:
        raise BackupError(f"{damaged} ({exc}); nothing was changed") from exc
    try:
        manifest = json.loads(found.pop(MANIFEST))
    except KeyError:
        raise BackupError(f"{path} has no {MANIFEST}: not a pinpanel backup") from None
    except ValueError as exc:
        raise BackupError(f"{path}: the manifest is not JSON ({exc})") from exc
    _check_manifest(path, manifest, found)
    if DATABASE not in found:
        raise BackupError(f"{path} holds no database")
    return Contents(manifest, found[DATABASE], found.get(CONFIG), found.get(READINGS),
                    found.get(HOMEKIT))


def _check_manifest(path: Path, manifest: Any, found: dict[str, bytes]) -> None:
    if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT
            or not isinstance(manifest.get("members"), dict)):
        raise BackupError(f"{path} is not a pinpanel backup (its manifest says otherwise)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{path} is backup format {manifest.get('format_version')!r}; "
                          f"this pinpanel reads format {FORMAT_VERSION}: upgrade pinpanel")
    schema = manifest.get("schema_version")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise BackupError(f"{path} has schema version {schema!r}, newer than this pinpanel "
                          f"knows ({SCHEMA_VERSION}): upgrade pinpanel first")
    listed: dict[str, Any] = manifest["members"]
    if set(listed) != set(found):
        raise BackupError(f"{path}: the manifest lists {sorted(listed)} but the archive "
                          f"holds {sorted(found)}")
    for name, data in found.items():
        entry = listed[name]
        if not isinstance(entry, dict) or entry.get("size") != len(data) or entry.get(
                "sha256") != hashlib.sha256(data).hexdigest():
            raise BackupError(f"{path}: {name} does not match its checksum in the manifest "
                              "(damaged); nothing was changed")


@dataclass(frozen=True)
class Restored:
    """What a restore did: where the data is now, and where the old data went."""

    data_dir: Path
    aside: Path | None
    config: Path | None
    config_aside: Path | None
    manifest: dict[str, Any]


def _aside(path: Path, stamp: str) -> Path:
    candidate = path.with_name(f"{path.name}.before-restore-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.before-restore-{stamp}-{number}")
    return candidate


def _owner_of(path: Path) -> tuple[int, int] | None:
    """Whose the old data is, when root restores it (the service user's, not root's)."""
    if os.geteuid() != 0 or not path.exists():
        return None
    info = path.stat()
    return info.st_uid, info.st_gid


def _stage(contents: Contents, staging: Path) -> list[Path]:
    """The archive's files in a new directory beside the data dir, each database verified."""
    staging.mkdir(mode=0o700)
    files = [("database", staging / DATABASE, contents.database, STATE_DATABASE)]
    if contents.readings is not None:
        files.append(("readings database", staging / READINGS, contents.readings,
                      READINGS_DATABASE))
    images = [(db, image) for _what, db, image, _kind in files]
    if contents.homekit is not None:
        images.append((staging / HOMEKIT, contents.homekit))
    for target, image in images:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, image)
        finally:
            os.close(fd)
    _sync_dir(staging)
    for what, db, _image, kind in files:
        try:
            verify_file(db, kind)
        except StoreError as exc:
            raise BackupError(f"the archive's {what} is not usable: {exc}; nothing was "
                              "changed") from exc
    return [target for target, _image in images]


def restore(path: Path, data_dir: Path, *, config_to: Path | None = None,
            now: datetime | None = None) -> Restored:
    """Replace ``data_dir`` (and ``config_to``, if given) with the archive's contents.

    Refuses, changing nothing, a damaged archive, a database that fails its checks, or a
    data directory a running server holds (DataDirInUseError).
    """
    contents = read(path)
    if config_to is not None and contents.config is None:
        raise BackupError(f"{path} holds no config file (the server ran without one)")
    stamp = _stamp(now or datetime.now(UTC))
    data_dir = data_dir.expanduser().absolute()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.with_name(f".{data_dir.name}.restoring-{stamp}-{os.getpid()}")
    owner = _owner_of(data_dir)
    try:
        staged = _stage(contents, staging)
        existed = data_dir.exists() and any(p.name != lock.LOCK_NAME for p in data_dir.iterdir())
        # Both locks: the old directory's (no server runs on it), and the new one's, so a
        # server starting the moment it is in place waits for this restore to finish.
        with lock.hold(data_dir), lock.hold(staging) as staged_lock:
            if owner is not None:  # the service's user must open all three
                for item in (staging, *staged, staged_lock):
                    os.chown(item, *owner)
            config_aside = (_replace_config(contents.config, config_to, stamp)
                            if config_to is not None and contents.config is not None else None)
            aside = _aside(data_dir, stamp) if existed else None
            if aside is not None:
                data_dir.rename(aside)
            else:
                shutil.rmtree(data_dir)  # only our lock file was there
            staging.rename(data_dir)
            _sync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Restored(data_dir, aside, config_to, config_aside, contents.manifest)


def _replace_config(text: bytes, config_to: Path, stamp: str) -> Path | None:
    """Write the archive's config file to ``config_to``, the old one kept aside."""
    aside = _aside(config_to, stamp) if config_to.exists() else None
    try:
        if aside is not None:
            shutil.copy2(config_to, aside)
        config_to.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot replace {config_to}: {exc.strerror}") from exc
    write_private(text, config_to, like=aside)
    return aside
