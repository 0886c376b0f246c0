"""``pinpanel reload``: the running server reads its config file again (as SIGHUP does).

It signals the server that holds the data directory's lock (the kernel names its pid), so
it needs no token and no URL: whoever may signal the server's process may reload it. With
``--config FILE`` the file is checked here first, and a file that would not load is refused
with every problem before the server is bothered. The server applies the file as a diff:
pins whose settings did not change are not touched; its log says what changed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from pinpanel.cli.exits import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK
from pinpanel.cli.options import add_config_arguments, config_from


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pinpanel import lock

    config = config_from(args)  # a bad --config stops here (ConfigError: exit 3)
    data_dir = config.server.data_path
    pid = lock.holder(data_dir)
    if pid is None:
        sys.stderr.write(f"pinpanel: no server is running on {data_dir}\n")
        return EXIT_NOT_FOUND
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        sys.stderr.write(f"pinpanel: cannot signal the server (pid {pid}): {exc.strerror}\n")
        return EXIT_ERROR
    sys.stdout.write(f"asked pinpanel (pid {pid}, {data_dir}) to reload its config file; "
                     "its log says what changed\n")
    return EXIT_OK


COMMANDS = {"reload": (arguments, run)}
