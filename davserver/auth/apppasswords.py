"""App passwords: generated passwords for DAV clients, each revocable on its own.

The file (``[auth] app_passwords``, by default ``app-passwords`` in the state folder) has
one ``user:name:created:hint:hash`` line per password: the name the user gave it, when it
was made (Unix time), the first group of the password (a hint, so that a login costs one
hash check, not one per app password of the user) and a bcrypt hash of the whole password,
made like the account passwords' (htpasswd.py). A password is 25 random characters of an
alphabet of 32 (125 bits), in five groups: the hint gives away 25 of them.

The server looks at the file (one ``stat``) at every login with an app password, so a
revoked one is refused at its next request, in every worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from davserver.runtime.threads import offload

from . import htpasswd

log = logging.getLogger("davserver.auth")
ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: read off a screen and typed
GROUPS, GROUP_LENGTH = 5, 5
_PASSWORD = re.compile(rf"^[{ALPHABET}]{{{GROUP_LENGTH}}}(-[{ALPHABET}]{{{GROUP_LENGTH}}}){{4}}$")
_NAME = re.compile(r"^[^:\s\x00-\x1f\x7f]{1,64}$")


class AppPasswordError(ValueError):
    """The file or a name is not usable; the message says why."""


@dataclass(frozen=True, slots=True)
class AppPassword:
    """One app password of a user."""

    user: str
    name: str
    created: int
    hint: str
    hashed: str


def valid_name(name: str) -> bool:
    """Whether ``name`` can name an app password (no colon, space or control character)."""
    return bool(_NAME.match(name))


def looks_like(password: str) -> bool:
    """Whether ``password`` has the form of a generated app password."""
    return bool(_PASSWORD.match(password))


def hint(password: str) -> str:
    """The part of a password kept in clear to find its line."""
    return password[:GROUP_LENGTH]


def generate() -> str:
    """A new random app password, e.g. ``k3vbq-9xw2m-...``."""
    return "-".join(
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)
    )


def read(path: Path) -> list[AppPassword]:
    """The app passwords of the file; a missing file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out: list[AppPassword] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(":", 4)
        if len(parts) != 5 or not parts[2].isdigit():
            raise AppPasswordError(f"{path}:{number}: not a 'user:name:created:hint:hash' line")
        user, name, created, hint_, hashed = parts
        if not (htpasswd.valid_user_name(user) and valid_name(name)):
            raise AppPasswordError(f"{path}:{number}: not a usable user or password name")
        out.append(AppPassword(user, name, int(created), hint_, hashed))
    return out


def write(path: Path, entries: list[AppPassword]) -> None:
    """Replace the file atomically with these app passwords (readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".app-passwords-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(
                f"{e.user}:{e.name}:{e.created}:{e.hint}:{e.hashed}\n"
                for e in sorted(entries, key=lambda e: (e.user, e.name))
            )
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextlib.contextmanager
def editing(path: Path) -> Iterator[list[AppPassword]]:
    """The entries of the file, written back when the block ends without an error; two
    commands editing at once wait for each other (a lock file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = read(path)
        yield entries
        write(path, entries)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is replaced or edited: inode, time, size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class AppPasswords:
    """The app passwords file as the server sees it: looked at again (one ``stat``) at
    every use, so that a revocation is seen by the next request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._by_user: dict[str, list[AppPassword]] = {}

    async def refresh(self) -> None:
        """Read the file again if it changed. A broken file counts as one without app
        passwords (refusing is the safe side); ``AppPasswordError`` says why."""

        def load() -> tuple[tuple[int, int, int] | None, list[AppPassword] | None]:
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return stamp, None
            return stamp, read(self.path)

        try:
            stamp, entries = await offload(load)
        except (AppPasswordError, OSError) as exc:
            log.error("app passwords refused: %s", exc)
            self._by_user, self._stamp = {}, None
            return
        if entries is not None:
            by_user: dict[str, list[AppPassword]] = {}
            for entry in entries:
                by_user.setdefault(entry.user, []).append(entry)
            self._by_user = by_user
        self._stamp = stamp

    async def check(self, user: str, password: str) -> AppPassword | None:
        """The app password of ``user`` that ``password`` is, if any."""
        await self.refresh()
        for entry in self._by_user.get(user, ()):
            if entry.hint == hint(password) and await offload(
                htpasswd.check_password, password, entry.hashed
            ):
                return entry
        return None

    async def holds(self, user: str, hashed: str) -> bool:
        """Whether the app password with this hash is still there (not revoked)."""
        await self.refresh()
        return any(e.hashed == hashed for e in self._by_user.get(user, ()))
