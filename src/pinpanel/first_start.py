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
import shlex
import socket
import sys
from pathlib import Path
from typing import TextIO

from pinpanel.auth import create_token, digest, list_tokens, revoke_token
from pinpanel.config import Config, default_data_dir
from pinpanel.store import Store

#: The name these lines have always been logged under (log filters may rely on it).
log = logging.getLogger("pinpanel.auth")

FIRST_LOGIN_FILE = "first-login.txt"
#: Meta row holding the hash of the token the first start made, to tell if it was ever used.
FIRST_LOGIN_KEY = "first_login_token"


def lan_address() -> str:
    """This machine's address on its default route (no packet is sent), else its host name."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            return str(probe.getsockname()[0])
        except OSError:
            return socket.gethostname()


def base_url(config: Config) -> str:
    """The address a phone would use to reach this server.

    ``server.public_url`` when set (behind a reverse proxy the server's own address is not
    one a browser can use), else this machine's address and port.
    """
    server = config.server
    if server.public_url:
        return server.public_url.rstrip("/")
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


#: Every line of the terminal QR code paints its own colours: bright white foreground
#: (the light modules and the quiet zone, drawn with block characters) on a black
#: background (the dark modules, left blank). A reader needs dark modules on a light
#: field; with the terminal's own colours that held only on dark terminals.
QR_COLOURS = "\x1b[97;40m"
QR_RESET = "\x1b[0m"


def qr_text(url: str) -> str:
    """``url`` as a QR code for a terminal: half blocks, four modules of quiet zone, and
    explicit colours, so it scans whatever the terminal's own background is."""
    import io

    import segno

    buffer = io.StringIO()
    segno.make(url, error="l").terminal(out=buffer, compact=True, border=4)
    return "".join(f"{QR_COLOURS}{line}{QR_RESET}\n"
                   for line in buffer.getvalue().splitlines())


def login_message(config: Config, token: str, name: str) -> str:
    url = login_link(config, token)
    return (f"\nLog in to pinpanel as {name!r}: open this link, or scan the code with a "
            f"phone.\nThe link is a password: it is shown only this once.\n\n  {url}\n\n"
            f"{qr_text(url)}\n")


def announce(config: Config, store: Store, out: TextIO | None = None) -> None:
    """At start-up: warn when auth is off; make the first admin token when none exists.

    Runs only once the port is bound, so a start that fails prints no link. If the token
    a first start made was never used, its link is gone with that terminal: a new token
    replaces it and its link is shown, so a failed or aborted first start never leaves a
    server nobody can log in to. Otherwise the log says the exact command for a new link.

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
    marked = store.read_meta(FIRST_LOGIN_KEY)
    unused = store.unused_token(marked) if marked else None
    if existing and unused is None:
        log.info("%d API token(s) exist. For a new login link: %s", len(existing),
                 new_link_command(config))
        return
    if unused is not None:
        # The first-start link was never used (the terminal scrolled away, or the start
        # that printed it was stopped): nobody holds that token, so make a fresh one.
        revoke_token(store, unused)
    token = create_token(store, "admin", "admin")
    store.write_meta_sync(FIRST_LOGIN_KEY, digest(token))
    message = login_message(config, token, "admin")
    if unused is not None:
        message = ("\nThe first-start login link was never used, so here is a new one (the "
                   "old one no longer works)." + message)
    if out.isatty():
        out.write(message)
        out.flush()
        return
    path = store.path.parent / FIRST_LOGIN_FILE
    write_private(path, message)
    if unused is not None:
        log.warning("the first-start admin login link was never used; a new one is in %s "
                    "(readable only by this user): open it, then delete the file", path)
        return
    log.warning("no API token existed, so an admin token was made. Its login link is in %s "
                "(readable only by this user): open it, then delete the file", path)


def new_link_command(config: Config) -> str:
    """The exact command that makes another admin login link for this server."""
    command = "pinpanel token create NAME --scope admin --link"
    if config.server.data_path != default_data_dir():
        command += f" --data-dir {shlex.quote(str(config.server.data_path))}"
    return command


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, created that way (no window at 0644)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
