"""Editing the TOML file: comments and layout kept, the loader's checks, atomic writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pinpanel.config_file import Edit, merged, read_document, validate, write_atomic
from pinpanel.errors import ConfigError

FILE = """\
# my relays (keep this comment)
[server]
port = 9000  # not the default

# the garage door: pulse only
[[pins]]
pin = 17
id = "garage"
active_low = true   # relay board
pulse_ms = 800

[[pins]]
pin = 27
name = "Porch"
"""


def doc(tmp_path: Path, text: str = FILE) -> Path:
    path = tmp_path / "pinpanel.toml"
    path.write_text(text)
    return path


def test_an_unchanged_edit_keeps_the_file_byte_for_byte(tmp_path: Path) -> None:
    document = read_document(doc(tmp_path))
    same = merged(document, Edit(pins=[
        {"pin": 17, "id": "garage", "active_low": True, "pulse_ms": 800},
        {"pin": 27, "name": "Porch"}]))
    assert same.as_string() == FILE


def test_an_edit_keeps_comments_and_changes_only_what_changed(tmp_path: Path) -> None:
    document = read_document(doc(tmp_path))
    edit = Edit(pins=[{"pin": 17, "id": "garage", "active_low": True, "pulse_ms": 1200},
                      {"pin": 27, "name": "Porch light"},
                      {"pin": 22, "name": "Fan", "mode": "output", "initial": "off"}],
                interlocks=[[17, "gpio22"]])
    text = merged(document, edit).as_string()
    for comment in ("# my relays (keep this comment)", "# not the default",
                    "# the garage door: pulse only", "# relay board"):
        assert comment in text
    data = tomllib.loads(text)
    assert data["pins"][0]["pulse_ms"] == 1200
    assert data["pins"][1] == {"pin": 27, "name": "Porch light"}
    # the default mode is not written; a value that differs from the default is
    assert data["pins"][2] == {"pin": 22, "name": "Fan", "initial": "off"}
    assert data["interlocks"] == [{"pins": [17, "gpio22"]}]
    assert data["server"] == {"port": 9000}
    config = validate(merged(document, edit), "test")
    assert [p.pin for p in config.pins] == [17, 27, 22] and config.interlocks == ((17, 22),)


def test_a_removed_pin_goes_with_its_table_and_the_rest_stays(tmp_path: Path) -> None:
    document = read_document(doc(tmp_path))
    text = merged(document, Edit(pins=[{"pin": 27, "name": "Porch"}])).as_string()
    assert "id = \"garage\"" not in text and "# my relays (keep this comment)" in text
    assert tomllib.loads(text)["pins"] == [{"pin": 27, "name": "Porch"}]


def test_every_problem_of_an_edit_is_reported_with_its_path(tmp_path: Path) -> None:
    document = read_document(doc(tmp_path))
    bad = merged(document, Edit(pins=[{"pin": 17, "pulse_ms": -5},
                                      {"pin": 99, "name": "x"}, {"pin": 27, "pull": "down"}]))
    with pytest.raises(ConfigError) as caught:
        validate(bad, "test")
    problems = caught.value.problems
    assert any(p.startswith("pins[0].pulse_ms:") for p in problems)
    assert any(p.startswith("pins[1].pin:") for p in problems)
    assert any(p.startswith("pins[2].pull:") for p in problems)


def test_no_file_yet_gives_a_document_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    text = merged(read_document(path), Edit(pins=[{"pin": 5, "name": "Bell"}])).as_string()
    assert text.startswith("#") and tomllib.loads(text)["pins"] == [{"pin": 5, "name": "Bell"}]


def test_write_keeps_the_previous_version_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = doc(tmp_path)
    path.chmod(0o640)
    write_atomic(path, "[[pins]]\npin = 4\n")
    assert path.read_text() == "[[pins]]\npin = 4\n"
    assert (tmp_path / "pinpanel.toml.bak").read_text() == FILE
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pinpanel.toml", "pinpanel.toml.bak"]


def test_a_first_write_creates_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "pinpanel.toml"
    write_atomic(path, "[[pins]]\npin = 4\n")
    assert path.read_text() == "[[pins]]\npin = 4\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not path.with_name("pinpanel.toml.bak").exists()
