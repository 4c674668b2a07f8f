"""``davserver user add|remove|list``: manage the accounts of the htpasswd file."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import cast

from davserver.config import ConfigError, load

from . import htpasswd


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``user`` command and its subcommands."""
    user = commands.add_parser("user", help="manage the accounts of the htpasswd file")
    where = user.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the config whose [auth] htpasswd to edit")
    where.add_argument("--file", type=Path, help="the htpasswd file to edit")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a user, or set a new password")
    add.add_argument("name")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    actions.add_parser("list", help="list the users")


def _file(args: argparse.Namespace) -> Path:
    if args.file is not None:
        return cast(Path, args.file)
    path = load(args.config).auth.htpasswd
    if path is None:
        raise ConfigError(f"{args.config}: auth.htpasswd: missing (no accounts file configured)")
    return path


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise ValueError("the passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    """Carry out a ``user`` command; the exit code says whether it worked."""
    try:
        path = _file(args)
        users = htpasswd.read(path)
        if args.action == "list":
            for name in sorted(users):
                print(name)
            return 0
        if not htpasswd.valid_user_name(args.name):
            raise ValueError(f"{args.name!r} is not a usable user name")
        if args.action == "add":
            password = _password(args.password_stdin)
            if not password:
                raise ValueError("an empty password is not allowed")
            users[args.name] = htpasswd.hash_password(password)
            htpasswd.write(path, users)
            print(f"davserver: {args.name} saved in {path}")
            return 0
        if args.name not in users:
            raise ValueError(f"no user {args.name!r} in {path}")
        del users[args.name]
        htpasswd.write(path, users)
        print(f"davserver: {args.name} removed from {path}")
        return 0
    except (ConfigError, htpasswd.HtpasswdError, ValueError, OSError) as exc:
        print(f"davserver: {exc}", file=sys.stderr)
        return 2
