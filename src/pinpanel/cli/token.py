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
            token = auth.create_token(store, args.name, args.scope)
            print(token)
            sys.stdout.flush()
            print(f"token {args.name!r} ({args.scope}) created. It is shown only this once; "
                  "keep it in $PINPANEL_TOKEN (pinpanel's client reads it; curl sends it as "
                  "-H \"Authorization: Bearer $PINPANEL_TOKEN\")", file=sys.stderr)
            if args.link:
                print(first_start.login_message(config, token, args.name), file=sys.stderr)
        elif args.action == "list":
            tokens = auth.list_tokens(store)
            print(f"{'name':<24} {'scope':<8} {'created':<21} last used")
            for info in tokens:
                print(f"{info.name:<24} {info.scope:<8} {info.created_at:<21} "
                      f"{info.last_used_at or 'never'}")
        else:
            auth.revoke_token(store, args.name)
            print(f"token {args.name!r} revoked; its browser sessions have ended",
                  file=sys.stderr)
    return EXIT_OK


def arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it (only this once)")
    create.add_argument("name", help="who or what uses it; the audit log records this name")
    create.add_argument("--scope", choices=auth.SCOPES, default="control",
                        help="read: see pins; control: also switch them; admin: also manage "
                             "tokens (default: control)")
    create.add_argument("--link", action="store_true",
                        help="also print a login link and its QR code (to stderr) for a phone")
    listing = actions.add_parser("list", help="list token names and scopes (never secrets)")
    revoke = actions.add_parser("revoke", help="delete a token; it stops working at once")
    revoke.add_argument("name")
    for sub in (create, listing, revoke):
        add_config_arguments(sub)


COMMANDS = {"token": (arguments, run)}
