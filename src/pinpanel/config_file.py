"""Editing the TOML file: an edit of the pins, validated by the loader, written back safely.

The file stays the source of truth. An edit from the page or the API is a list of pin
tables (and interlocks, groups) as the file would hold them; it is merged into the file's
own document with ``tomlkit``, so the user's comments, key order and layout survive: a pin
whose values did not change keeps its table byte for byte, a changed value is replaced where
it stands, a new pin is appended. The merged document is then read by the same
:func:`pinpanel.config.parse` as the file at start-up (every problem at once, each with its
path) before anything is written, and written atomically: a temp file in the same
directory, fsync, rename over the file, fsync of the directory, the previous version kept
beside it as ``<name>.bak``. A power cut at any point leaves either the old file or the new
one, never half of either.

tomlkit is imported by the functions that edit a document, not with the module: a server
that is never asked to save does not carry it (about 1 MB of its idle memory).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinpanel.config import PIN_SETTINGS, Config, parse
from pinpanel.errors import ConfigError

if TYPE_CHECKING:
    from tomlkit.items import Table
    from tomlkit.toml_document import TOMLDocument

#: The file a server started without ``--config`` writes on its first save (in its data
#: directory, which it may always write), and reads on later starts.
DEFAULT_NAME = "pinpanel.toml"
_DEFAULTS: dict[str, Any] = {s.name: s.default for s in PIN_SETTINGS}
_HEADER = ("pinpanel configuration, written by the settings page. Edit it freely: comments "
           "and layout are kept on the next save.")


def default_path(data_dir: Path) -> Path:
    """Where a server started without a config file keeps the one its first save writes."""
    return data_dir / DEFAULT_NAME


@dataclass(frozen=True)
class Edit:
    """What the settings page edits: the whole list of pins, interlocks and groups.

    ``pins`` hold the keys of ``[[pins]]`` tables; ``interlocks`` the ``pins`` of each
    ``[[interlocks]]``; ``groups`` the ``[[groups]]`` tables (None: left as the file has
    them).
    """

    pins: Sequence[Mapping[str, Any]]
    interlocks: Sequence[Sequence[int | str]] = ()
    groups: Sequence[Mapping[str, Any]] | None = None


def toml_error() -> type[Exception]:
    """tomlkit's error base, for an ``except`` that runs only once a save has loaded it."""
    import tomlkit.exceptions

    return tomlkit.exceptions.TOMLKitError


def read_document(path: Path) -> TOMLDocument:
    """The file's document; an empty one (with a header comment) if there is no file yet."""
    import tomlkit
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        document = tomlkit.document()
        document.add(tomlkit.comment(_HEADER))
        return document
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(path)) from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None


def merged(document: TOMLDocument, edit: Edit) -> TOMLDocument:
    """``document`` with ``edit`` merged in; the given document is left as it was."""
    import tomlkit
    result = tomlkit.parse(document.as_string())
    _merge_pins(result, edit.pins)
    _replace_tables(result, "interlocks", [{"pins": list(refs)} for refs in edit.interlocks])
    if edit.groups is not None:
        _replace_tables(result, "groups", edit.groups)
    return result


def _merge_pins(document: TOMLDocument, pins: Sequence[Mapping[str, Any]]) -> None:
    """Pins matched to the file's tables by BCM number (else by position), edited in place."""
    import tomlkit
    from tomlkit.items import AoT
    existing = document.get("pins")
    tables: list[Table] = list(existing) if isinstance(existing, AoT) else []
    by_bcm = {t.get("pin"): t for t in tables if isinstance(t.get("pin"), int)}
    kept: list[Table] = []
    for i, wanted in enumerate(pins):
        table = by_bcm.pop(wanted.get("pin"), None)
        if table is None and i < len(tables) and not isinstance(tables[i].get("pin"), int):
            table = tables[i]
        if table is None:
            table = tomlkit.table()
        _edit_table(table, wanted)
        kept.append(table)
    def held(table: Table) -> bool:
        return any(table is t for t in tables)

    ours = [t for t in kept if held(t)]
    if isinstance(existing, AoT) and ours == [t for t in tables if t in ours] and \
            all(not held(t) for t in kept[len(ours):]):
        # Same order: edit the array in place, so untouched tables keep their layout.
        for i in reversed(range(len(tables))):
            if not any(tables[i] is t for t in ours):
                del existing[i]
        for table in kept[len(ours):]:
            existing.append(table)
        return
    aot = tomlkit.aot()
    for table in kept:
        aot.append(table)
    if "pins" in document:
        document["pins"] = aot
    elif kept:
        document.append("pins", aot)


def _edit_table(table: Table, wanted: Mapping[str, Any]) -> None:
    """Set the values that differ, drop keys no longer given; a default stays unwritten."""
    for key in [k for k in table if k not in wanted]:
        del table[key]
    for key, value in wanted.items():
        if key in table:
            if _plain(table[key]) != value:
                table[key] = value
        elif value != _DEFAULTS.get(key, object()) and value != "":
            table[key] = value


def _replace_tables(document: TOMLDocument, key: str,
                    wanted: Sequence[Mapping[str, Any]]) -> None:
    """An array of tables replaced only if its values changed (its comments kept if not)."""
    import tomlkit
    current = document.get(key)
    if _plain(current) == [dict(w) for w in wanted] or (current is None and not wanted):
        return
    if not wanted:
        del document[key]
        return
    aot = tomlkit.aot()
    for entry in wanted:
        table = tomlkit.table()
        for name, value in entry.items():
            table[name] = value
        aot.append(table)
    if key in document:
        document[key] = aot
    else:
        document.append(key, aot)


def _plain(value: object) -> object:
    return value.unwrap() if hasattr(value, "unwrap") else value


def validate(document: TOMLDocument, source: str) -> Config:
    """The config the document says, by the start-up loader; ConfigError with every fault."""
    return parse(document.unwrap(), source)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a crash leaves the old or the new file, whole.

    The previous file is kept as ``<name>.bak`` (itself written the same way), its mode
    carried over to the new file.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    mode = 0o600
    with contextlib.suppress(FileNotFoundError):
        old = path.read_bytes()
        mode = path.stat().st_mode & 0o777
        _replace(directory, path.with_name(path.name + ".bak"), old, mode)
    _replace(directory, path, text.encode("utf-8"), mode)


def _replace(directory: Path, target: Path, data: bytes, mode: int) -> None:
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        Path(temp).replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temp).unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def pin_tables(config: Config) -> list[dict[str, Any]]:
    """The pins of ``config`` as full tables (every setting), for the page and the API."""
    return [{s.name: getattr(pin, s.name) for s in PIN_SETTINGS} for pin in config.pins]
