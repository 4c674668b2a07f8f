"""An Apache-style htpasswd file: one ``user:hash`` line per account.

Hashes are bcrypt (``$2y$``/``$2b$``, what ``htpasswd -B`` writes) or argon2
(``$argon2id$``), checked with the bcrypt and argon2-cffi libraries; new passwords get
bcrypt, so the file stays usable with Apache's own tools. Other hash kinds (MD5-crypt,
SHA-1, plain text) are refused: they are too weak to keep serving.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Re-exported: what a user name may be is decided below the auth layer, where the
# sharing requests (caldav/sharing.py) check the sharees they name too.
from davserver.dav.identity import valid_user_name as valid_user_name

_ARGON2 = PasswordHasher()


class HtpasswdError(ValueError):
    """The file or an entry in it is not usable; the message says why."""


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password``, in the ``$2y$`` form htpasswd uses."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    return "$2y$" + hashed[4:]


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (slow on purpose: call off the event loop)."""
    if hashed.startswith(("$2y$", "$2b$", "$2a$")):
        return bcrypt.checkpw(password.encode(), ("$2b$" + hashed[4:]).encode())
    if hashed.startswith("$argon2"):
        try:
            return _ARGON2.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False
    return False


def read(path: Path) -> dict[str, str]:
    """The accounts of an htpasswd file (user → hash); a missing file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, hashed = line.strip().partition(":")
        if not sep or not valid_user_name(user):
            raise HtpasswdError(f"{path}:{number}: not a 'user:hash' line")
        if not hashed.startswith(("$2y$", "$2b$", "$2a$", "$argon2")):
            raise HtpasswdError(f"{path}:{number}: {user}: only bcrypt and argon2 hashes")
        users[user] = hashed
    return users


def write(path: Path, users: dict[str, str]) -> None:
    """Replace the file atomically with these accounts (readable by its owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".htpasswd-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(f"{user}:{hashed}\n" for user, hashed in sorted(users.items()))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
