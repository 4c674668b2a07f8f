"""A server under test on either backend, and what is stored, for "nothing changed" checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from gitrepo import commits, files
from helpers import snapshot


@dataclass
class Drive:
    """A client of a WebDAV mount at / on ``backend`` (filesystem: ``root``; git:
    ``repo``)."""

    client: TestClient
    backend: str
    root: Path
    repo: Path

    def stored(self) -> object:
        """Everything stored: the folder's entries, or the branch's commits and files."""
        if self.backend == "filesystem":
            return snapshot(self.root)
        found = commits(self.repo)
        return (found, files(self.repo) if found else {})

    def commits(self) -> int:
        """Commits on the branch (0 on the filesystem backend)."""
        return len(commits(self.repo)) if self.backend == "git" else 0

    def file(self, name: str) -> bytes:
        """The bytes of a stored file."""
        if self.backend == "filesystem":
            return (self.root / name).read_bytes()
        return files(self.repo)[name]


async def make_drive(
    backend: str, make_client: Any, make_git_client: Any, root: Path, repo: Path, **options: Any
) -> Drive:
    """Start the server on ``backend`` with mount options."""
    if backend == "filesystem":
        client = await make_client(**options)
    else:
        client = await make_git_client(**options)
    return Drive(client, backend, root, repo)
