"""``davserver user add|remove|list``: manage the accounts of the htpasswd file;
``davserver user app-password add|list|revoke``: the app passwords of a user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from pathlib import Path
from typing import cast

from davserver.config import Config, ConfigError, load

from . import apppasswords, htpasswd
from .ldap import Directory, DirectoryUnavailable


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
    apps = actions.add_parser("app-password", help="passwords for DAV clients (needs --config)")
    what = apps.add_subparsers(dest="what", required=True)
    app_add = what.add_parser("add", help="make one (printed once) for an account")
    app_add.add_argument("user")
    app_add.add_argument("name", help="what it is for, e.g. phone")
    app_list = what.add_parser("list", help="list the app passwords of a user")
    app_list.add_argument("user")
    revoke = what.add_parser("revoke", help="revoke one: refused from the next request on")
    revoke.add_argument("user")
    revoke.add_argument("name")


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
        if args.action == "app-password":
            return _app_password(args)
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
    except (ConfigError, htpasswd.HtpasswdError, DirectoryUnavailable, ValueError, OSError) as exc:
        print(f"davserver: {exc}", file=sys.stderr)
        return 2


def _app_password(args: argparse.Namespace) -> int:
    if args.config is None:
        raise ValueError(
            "app passwords need --config: they are kept where its [auth] app_passwords says "
            "(by default in the state folder)"
        )
    config = load(args.config)
    path = config.app_passwords
    user = args.user
    if not htpasswd.valid_user_name(user):
        raise ValueError(f"{user!r} is not a usable user name")
    if args.what == "list":
        for entry in apppasswords.read(path):
            if entry.user == user:
                made = time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry.created))
                print(f"{entry.name}\t{made} UTC")
        return 0
    if not apppasswords.valid_name(args.name):
        raise ValueError(f"{args.name!r} is not a usable name (no colon, space or control)")
    if args.what == "revoke":
        with apppasswords.editing(path) as entries:
            found = [e for e in entries if e.user == user and e.name == args.name]
            if not found:
                raise ValueError(f"{user!r} has no app password named {args.name!r}")
            entries.remove(found[0])
        print(f"davserver: app password {args.name!r} of {user!r} revoked", file=sys.stderr)
        return 0
    _check_account(config, user)
    password = apppasswords.generate()
    hashed = htpasswd.hash_password(password)
    with apppasswords.editing(path) as entries:
        if any(e.user == user and e.name == args.name for e in entries):
            raise ValueError(f"{user!r} already has an app password named {args.name!r}")
        entry = apppasswords.AppPassword(
            user, args.name, int(time.time()), apppasswords.hint(password), hashed
        )
        entries.append(entry)
    print(password)
    print(
        f"davserver: app password {args.name!r} of {user!r} saved in {path} (shown this once only)",
        file=sys.stderr,
    )
    return 0


def _check_account(config: Config, user: str) -> None:
    """Refuse an app password for someone who is no account (in the htpasswd file or the
    directory; behind a proxy only, anyone is)."""
    auth = config.auth
    if not auth.accounts:
        raise ConfigError(f"{config.source}: auth: no login source configured")
    if auth.htpasswd is not None and user in htpasswd.read(auth.htpasswd):
        return
    if auth.ldap is not None:
        directory = Directory(auth.ldap)
        try:
            found = asyncio.run(directory.find(user))
        finally:
            directory.close()
        if found is not None and found.name == user:
            return
    elif auth.htpasswd is None:
        return
    raise ValueError(f"no account {user!r} (app passwords are for existing accounts)")
