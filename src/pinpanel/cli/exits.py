"""Every exit code pinpanel's command line uses, and what each means: the one list.

Scripts and service managers rely on these numbers, so they are declared here once and the
client commands' ``--help`` epilog and the README table are both read from :data:`EXIT_CODES`.
"""

from __future__ import annotations

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3
#: The client commands (pins, on, off, toggle, pulse, watch) add these.
EXIT_AUTH, EXIT_NOT_FOUND, EXIT_CONFLICT = 4, 5, 6
#: ``serve`` adds these: what it needs is held by another process (nothing was changed).
EXIT_PORT_IN_USE, EXIT_DATA_DIR_IN_USE = 7, 8
EXIT_INTERRUPTED = 130

#: What a script can rely on. 1 also covers a server that cannot be reached.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "error: server unreachable, server error (5xx), or a failure here",
    EXIT_USAGE: "usage: bad arguments, or the server refused the values (400/413/415/422)",
    EXIT_CONFIG: "configuration: invalid config file or server URL",
    EXIT_AUTH: "authentication: the token is missing, wrong, revoked or lacks the scope",
    EXIT_NOT_FOUND: "not found: no such pin",
    EXIT_CONFLICT: "conflict: the pin's mode does not allow it (switching an input)",
    EXIT_PORT_IN_USE: "port in use: serve's port is taken (choose another with --port)",
    EXIT_DATA_DIR_IN_USE: "data directory in use: another pinpanel serves the same data dir",
    EXIT_INTERRUPTED: "interrupted (Ctrl+C)",
}
