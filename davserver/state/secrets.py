"""Secrets a server makes once and keeps (the WebDAV-Push keys): made by the first process
that asks for one, read by every other. In the state folder here, one file each; in the
database several hosts share, postgres/secrets.py."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from davserver.runtime.threads import offload


class Secrets(Protocol):
    """Where the secrets are kept."""

    async def get(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The secret ``name``; when there is none yet, what ``make`` gives becomes it,
        unless another process (or host) gets there first: then theirs is given, so
        every process has the same."""

    async def close(self) -> None:
        """Release the store."""


class FileSecrets:
    """:class:`Secrets` as files of ``folder``, readable by their owner only, each named
    as its secret. Processes making one at once each write a candidate under a
    temporary name and link it into place: the link fails for all but the first, and
    every one then reads what the first made."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def get(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The file's bytes (made once when missing)."""
        return await offload(self._get, self._folder / name, make)

    @staticmethod
    def _get(path: Path, make: Callable[[], bytes]) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(make())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return path.read_bytes()

    async def close(self) -> None:
        """Nothing to release."""
