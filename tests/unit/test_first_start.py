"""The first start: a QR code that scans on any terminal, and a link that is never lost."""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import segno

from pinpanel import auth, first_start
from pinpanel.config import load, with_overrides
from pinpanel.store import Store

URL = "http://192.168.1.23:8080/login?token=pp_" + "Q7x-_" * 8 + "abc"
#: (default foreground, default background) of a light and of a dark terminal theme.
THEMES = {"light": (0, 255), "dark": (204, 30)}
ANSI = {"97": ("fg", 255), "40": ("bg", 0), "30": ("fg", 0), "107": ("bg", 255)}
#: What each half-block character paints with the foreground: (top half, bottom half).
BLOCKS = {" ": (False, False), "\u2580": (True, False), "\u2584": (False, True),
          "\u2588": (True, True)}


def render(text: str, theme: str, scale: int = 4) -> bytes:
    """``text`` as a terminal with this theme shows it, as a greyscale PGM image."""
    default_fg, default_bg = THEMES[theme]
    rows: list[list[int]] = []
    for line in text.splitlines():
        fg, bg = default_fg, default_bg
        top: list[int] = []
        bottom: list[int] = []
        for token in re.findall(r"\x1b\[[0-9;]*m|.", line):
            if token.startswith("\x1b["):
                for code in token[2:-1].split(";"):
                    if code in ("", "0"):
                        fg, bg = default_fg, default_bg
                    elif code in ANSI:
                        which, value = ANSI[code]
                        fg, bg = (value, bg) if which == "fg" else (fg, value)
                continue
            upper, lower = BLOCKS[token]
            top.append(fg if upper else bg)
            bottom.append(fg if lower else bg)
        rows += [top, bottom]
    width = max(len(r) for r in rows)
    # The terminal around the code: its own background, a cell's margin all round.
    margin = 2
    canvas = [[default_bg] * (width + 2 * margin) for _ in range(len(rows) + 2 * margin)]
    for y, row in enumerate(rows):
        for x, value in enumerate(row):
            canvas[y + margin][x + margin] = value
    pixels = bytearray()
    for row in canvas:
        line = bytearray()
        for value in row:
            line += bytes([value]) * scale
        pixels += bytes(line) * scale
    height, wide = len(canvas) * scale, len(canvas[0]) * scale
    return f"P5 {wide} {height} 255\n".encode() + bytes(pixels)


def decode(image: bytes, tmp_path: Path, name: str) -> str | None:
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg (Debian's zbar-tools) is needed: scripts/test installs it"
    path = tmp_path / f"{name}.pgm"
    path.write_bytes(image)
    result = subprocess.run([zbarimg, "--quiet", "--raw", str(path)], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.mark.parametrize("theme", sorted(THEMES))
def test_the_terminal_qr_code_scans_on_light_and_dark_terminals(theme: str,
                                                                 tmp_path: Path) -> None:
    assert decode(render(first_start.qr_text(URL), theme), tmp_path, theme) == URL


def test_without_its_own_colours_the_code_would_not_scan_on_a_light_terminal(
        tmp_path: Path) -> None:
    """Why the colours are there: the terminal's defaults invert the code on a light theme."""
    plain = io.StringIO()
    segno.make(URL, error="l").terminal(out=plain, compact=True, border=4)
    assert decode(render(plain.getvalue(), "dark"), tmp_path, "plain-dark") == URL
    assert decode(render(plain.getvalue(), "light"), tmp_path, "plain-light") is None


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _token_in(text: str) -> str:
    found = re.search(r"/login\?token=(pp_[A-Za-z0-9_-]+)", text)
    assert found, text
    return found.group(1)


def test_a_first_login_link_never_used_is_shown_again_as_a_new_one(tmp_path: Path) -> None:
    config = with_overrides(load(None), server__host="127.0.0.1", server__port=8123,
                            server__data_dir=str(tmp_path))
    store = Store.open(tmp_path)
    try:
        first = Terminal()
        first_start.announce(config, store, first)
        old = _token_in(first.getvalue())
        again = Terminal()
        first_start.announce(config, store, again)  # the next start: the link was not used
        assert "never used, so here is a new one" in again.getvalue()
        new = _token_in(again.getvalue())
        assert new != old
        keyring = auth.Keyring(store, recheck_s=0)
        assert keyring.verify_token(old) is None, "the unused old link stops working"
        assert keyring.verify_token(new) == auth.Principal("admin", "admin", "token")
        assert [t.name for t in auth.list_tokens(store)] == ["admin"]
    finally:
        store.close()


def test_once_the_link_was_used_a_start_names_the_command_for_a_new_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "my data"
    config = with_overrides(load(None), server__data_dir=str(data))
    store = Store.open(data)
    try:
        first = Terminal()
        first_start.announce(config, store, first)
        store.write_sync(lambda conn: conn.execute(
            "UPDATE tokens SET last_used_at = '2026-12-02T10:00:00Z'"))  # it was used
        later = Terminal()
        with caplog.at_level(logging.INFO):
            first_start.announce(config, store, later)
        assert later.getvalue() == ""
        assert (f"pinpanel token create NAME --scope admin --link --data-dir '{data}'"
                in caplog.text)
    finally:
        store.close()


def test_the_command_leaves_out_the_default_data_dir() -> None:
    assert first_start.new_link_command(load(None)) == \
        "pinpanel token create NAME --scope admin --link"


def test_the_login_link_names_the_public_url_behind_a_proxy() -> None:
    config = with_overrides(load(None), server__host="127.0.0.1", server__port=8080,
                            server__public_url="https://pins.example.org/")
    link = first_start.login_link(config, "pp_x")
    assert link == "https://pins.example.org/login?token=pp_x"
    assert "https://pins.example.org/login?token=pp_x" in first_start.login_message(
        config, "pp_x", "admin")
    plain = with_overrides(load(None), server__host="127.0.0.1", server__port=8080)
    assert first_start.login_link(plain, "pp_x") == "http://127.0.0.1:8080/login?token=pp_x"
