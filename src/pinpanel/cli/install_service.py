"""``pinpanel install-service``: the command over :mod:`pinpanel.service`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from pinpanel.service import (
    DEFAULT_USER,
    GPIO_GROUP,
    UNIT_DIR,
    UNIT_NAME,
    ServiceError,
    hidden_paths,
    install,
    next_steps,
    plan,
    system_user_commands,
    unit_text,
)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=DEFAULT_USER, metavar="NAME",
                        help=f"system user the service runs as, created if missing and put "
                             f"in the gpio group (default: {DEFAULT_USER})")
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="config file the service reads (validated now; keep it outside "
                             "/home, e.g. /etc/pinpanel/pinpanel.toml)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the unit and the user commands instead of applying them")
    parser.add_argument("--unit-dir", type=Path, default=UNIT_DIR, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    service = plan(args.user, args.config)
    if args.dry_run:
        for path in hidden_paths(service):
            print(f"pinpanel: warning: {path} is under a home directory, which the service "
                  "cannot see (ProtectHome); install under /opt instead", file=sys.stderr)
        sys.stdout.write(unit_text(service))
        commands = system_user_commands(service.user)
        print(f"\n# Would write {args.unit_dir / UNIT_NAME}"
              + (" after running:" if commands else "; the user is ready."))
        for argv in commands:
            print("#   " + shlex.join(argv))
        print("# " + next_steps().rstrip().replace("\n", "\n# "))
        return 0
    if args.unit_dir == UNIT_DIR and os.geteuid() != 0:
        raise ServiceError("installing a system service needs root: run it with sudo "
                           "(or add --dry-run to see the unit)")
    commands = system_user_commands(service.user) if args.unit_dir == UNIT_DIR else []
    written = install(service, unit_dir=args.unit_dir, commands=commands)
    print(f"Wrote {written} (runs as user {service.user!r} in group {GPIO_GROUP!r}).")
    print(next_steps(), end="")
    return 0


COMMANDS = {"install-service": (arguments, run)}
