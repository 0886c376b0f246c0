"""The first start: an admin token and its login link, printed once for a phone to open.

When authentication is on and no token exists yet, the server makes an ``admin`` token and
shows its login link (and the link as a QR code) on the terminal, or, without a terminal
(systemd), writes it to a file only this user can read. The link is a password, so it never
goes through logging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TextIO

from pinpanel.auth import create_token, list_tokens
from pinpanel.config import Config
from pinpanel.store import Store

#: The name these lines have always been logged under (log filters may rely on it).
log = logging.getLogger("pinpanel.auth")

FIRST_LOGIN_FILE = "first-login.txt"


def lan_address() -> str:
    """This machine's address on its default route (no packet is sent), else its host name."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            return str(probe.getsockname()[0])
        except OSError:
            return socket.gethostname()


def base_url(config: Config) -> str:
    """The address a phone on the LAN would use to reach this server."""
    server = config.server
    scheme = "https" if server.certfile else "http"
    named = [h for h in server.trusted_hosts if "*" not in h]
    if named:  # with an explicit list, a bare IP would be refused by the host check
        host = named[0]
    elif server.host in ("0.0.0.0", "::", ""):
        host = lan_address()
    else:
        host = server.host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{server.port}"


def login_link(config: Config, token: str) -> str:
    return f"{base_url(config)}/login?token={token}"


def qr_text(url: str) -> str:
    import io

    import segno

    buffer = io.StringIO()
    segno.make(url, error="l").terminal(out=buffer, compact=True)
    return buffer.getvalue()


def login_message(config: Config, token: str, name: str) -> str:
    url = login_link(config, token)
    return (f"\nLog in to pinpanel as {name!r}: open this link, or scan the code with a "
            f"phone.\nThe link is a password: it is shown only this once.\n\n  {url}\n\n"
            f"{qr_text(url)}\n")


def announce(config: Config, store: Store, out: TextIO | None = None) -> None:
    """At start-up: warn when auth is off; make the first admin token when none exists.

    The login link goes to the terminal only, never through logging (secrets never reach a
    log). Without a terminal (systemd), it is written to a 0600 file in the data directory
    and only that file's path is logged.
    """
    out = out or sys.stdout
    if not config.auth.enabled:
        log.warning("authentication is OFF ([auth] enabled = false or --no-auth): anyone who "
                    "can reach this server can switch its pins. Use it on a trusted network "
                    "only.")
        return
    existing = list_tokens(store)
    if existing:
        log.info("%d API token(s) exist. For a new login link: pinpanel token create NAME "
                 "--scope admin --link", len(existing))
        return
    token = create_token(store, "admin", "admin")
    message = login_message(config, token, "admin")
    if out.isatty():
        out.write(message)
        out.flush()
        return
    path = store.path.parent / FIRST_LOGIN_FILE
    write_private(path, message)
    log.warning("no API token existed, so an admin token was made. Its login link is in %s "
                "(readable only by this user): open it, then delete the file", path)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, created that way (no window at 0644)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
