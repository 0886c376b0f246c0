"""``pinpanel token create|list|revoke``: API tokens, straight on the data directory.

Works whether or not a server runs on the same directory: the store serialises writers, and
a running server notices a revoked token at its next request (see :class:`pinpanel.auth.Keyring`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from pinpanel import auth, first_start
from pinpanel.cli.exits import EXIT_OK
from pinpanel.cli.options import add_config_arguments, config_from
from pinpanel.config import Config
from pinpanel.errors import AuthError
from pinpanel.store import Store


@contextlib.contextmanager
def _store_of(args: argparse.Namespace) -> Iterator[tuple[Config, Store]]:
    config = config_from(args)
    store = Store.open(config.server.data_path, max_rows=config.history.max_rows,
                       max_age_days=config.history.max_age_days)
    try:
        yield config, store
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    with _store_of(args) as (config, store):
        if args.action == "create":
            grants = _grants(config, args)
            lifetime = None if args.expires is None else auth.parse_lifetime(args.expires)
            token = auth.create_token(store, args.name, args.scope, grants=grants,
                                      lifetime_s=lifetime)
            print(token)
            sys.stdout.flush()
            limits = ""
            if grants is not None:
                limits += f", limited to {auth.grants_json(grants)}"
            if lifetime is not None:
                limits += f", expiring in {args.expires}"
            print(f"token {args.name!r} ({args.scope}{limits}) created. It is shown only "
                  "this once; keep it in $PINPANEL_TOKEN (pinpanel's client reads it; curl "
                  "sends it as -H \"Authorization: Bearer $PINPANEL_TOKEN\")", file=sys.stderr)
            if args.link:
                print(first_start.login_message(config, token, args.name), file=sys.stderr)
        elif args.action == "list":
            tokens = auth.list_tokens(store)
            print(f"{'name':<24} {'scope':<8} {'created':<21} {'last used':<21} limits")
            for info in tokens:
                limits = ("guest link; " if info.kind == "guest" else "") + \
                    (f"pins {auth.grants_json(info.grants)}" if info.grants is not None
                     else "all pins")
                if info.expires_at is not None:
                    limits += f"; expires {auth.stamp(info.expires_at)}"
                print(f"{info.name:<24} {info.scope:<8} {info.created_at:<21} "
                      f"{info.last_used_at or 'never':<21} {limits}")
        else:
            auth.revoke_token(store, args.name)
            print(f"token {args.name!r} revoked; its browser sessions have ended",
                  file=sys.stderr)
    return EXIT_OK


def _grants(config: Config, args: argparse.Namespace) -> frozenset[tuple[int, str]] | None:
    """``--pins`` and ``--actions`` as grants, pins resolved against the config."""
    if args.pins is None and args.actions is None:
        return None
    if not args.pins:
        raise AuthError("--actions needs --pins (which pins they are allowed on)")
    by_ref = {str(p.pin): p.pin for p in config.pins} | {p.id: p.pin for p in config.pins}
    per_pin: dict[int, list[str]] = {}
    actions = [a.strip() for a in (args.actions or "").split(",") if a.strip()]
    for ref in (r.strip() for r in args.pins.split(",") if r.strip()):
        if ref not in by_ref:
            raise AuthError(f"--pins: no pin {ref!r} in the config (known: "
                            f"{', '.join(sorted(by_ref)) or 'none'})")
        per_pin.setdefault(by_ref[ref], []).extend(actions)
    return auth.make_grants(per_pin)


def arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it (only this once)")
    create.add_argument("name", help="who or what uses it; the audit log records this name")
    create.add_argument("--scope", choices=auth.SCOPES, default="control",
                        help="read: see pins; control: also switch them; admin: also manage "
                             "tokens (default: control)")
    create.add_argument("--pins", metavar="PIN,...",
                        help="limit it to these pins (ids or BCM numbers, comma-separated)")
    create.add_argument("--actions", metavar="ACTION,...",
                        help="what it may do on those pins: on, off, toggle, pulse, level, "
                             "angle, simulate, switch (= on,off,toggle); none: see only")
    create.add_argument("--expires", metavar="LIFETIME",
                        help="stop working after 1h, 1d, 1w, 90m... (default: never)")
    create.add_argument("--link", action="store_true",
                        help="also print a login link and its QR code (to stderr) for a phone")
    listing = actions.add_parser("list", help="list token names and scopes (never secrets)")
    revoke = actions.add_parser("revoke", help="delete a token; it stops working at once")
    revoke.add_argument("name")
    for sub in (create, listing, revoke):
        add_config_arguments(sub)


COMMANDS = {"token": (arguments, run)}
