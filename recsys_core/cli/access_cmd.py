"""Access commands: who may log in when the app is exposed beyond 127.0.0.1 (``users``), and
which server folders the app may import from (``data-dirs``).

Examples::

    python -m recsys_core users add alice --role analyst          # asks for the password twice
    echo "$PASSWORD" | python -m recsys_core users add bob --role viewer --password-stdin
    python -m recsys_core users list
    python -m recsys_core users remove bob
    python -m recsys_core data-dirs add /data/shared     # the app may import from there
    python -m recsys_core data-dirs list
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from recsys_core.cli.main import print_json, workspace_of


def register(subparsers: Any) -> None:
    """Add ``users add|list|remove`` to the top-level parser."""
    p = subparsers.add_parser(
        "users",
        help="manage the app's login accounts (analyst or viewer)",
        description="Accounts for the login the app asks for when it listens on an address "
        "other than 127.0.0.1. Passwords are stored as Argon2id hashes in the workspace.",
    )
    sub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add an account, or set a new password and role")
    add.add_argument("name", help="user name (letters, digits, . _ @ -)")
    add.add_argument(
        "--role", choices=("analyst", "viewer"), required=True,
        help="analyst: everything; viewer: the read-only demo pages",
    )
    add.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from the first line of standard input (no prompt)",
    )
    add.set_defaults(func=cmd_add)
    lst = sub.add_parser("list", help="list the accounts (names and roles)")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=cmd_list)
    rm = sub.add_parser("remove", help="remove an account")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
    _register_data_dirs(subparsers)


def _register_data_dirs(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data-dirs",
        help="server folders the app's path import may read (besides workspace/imports)",
        description="The app's 'path on the server' import reads only inside these folders, "
        "<workspace>/imports and the bundled sample ($RECSYS_EXPLORER_DATA_DIRS adds more). "
        "The command line itself is not confined.",
    )
    sub = p.add_subparsers(dest="dirs_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="allow a folder")
    add.add_argument("folder")
    add.set_defaults(func=cmd_dirs_add)
    rm = sub.add_parser("remove", help="forget a folder added with add")
    rm.add_argument("folder")
    rm.set_defaults(func=cmd_dirs_remove)
    sub.add_parser("list", help="the allowed folders").set_defaults(func=cmd_dirs_list)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ; run the command again")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    from recsys_core.access import add_account

    account = add_account(workspace_of(args), args.name, _password(args), args.role)
    print(f"account {account.name!r} saved with role {account.role}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from recsys_core.access import list_accounts

    accounts = list_accounts(workspace_of(args))
    if args.json:
        print_json([{"name": a.name, "role": a.role, "created_at": a.created_at} for a in accounts])
        return 0
    if not accounts:
        print("no accounts; add one with: python -m recsys_core users add NAME --role analyst")
    for account in accounts:
        print(f"{account.name}\t{account.role}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from recsys_core.access import remove_account

    remove_account(workspace_of(args), args.name)
    print(f"account {args.name!r} removed")
    return 0


def cmd_dirs_add(args: argparse.Namespace) -> int:
    from recsys_core.data.confine import add_data_dir

    print(f"the app may now import from {add_data_dir(workspace_of(args), args.folder)}")
    return 0


def cmd_dirs_remove(args: argparse.Namespace) -> int:
    from recsys_core.data.confine import remove_data_dir

    remove_data_dir(workspace_of(args), args.folder)
    print(f"removed {args.folder}")
    return 0


def cmd_dirs_list(args: argparse.Namespace) -> int:
    from recsys_core.data.confine import allowed_dirs

    for folder in allowed_dirs(workspace_of(args)):
        print(folder)
    return 0
