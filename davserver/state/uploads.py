"""Uploads under way in pieces (the web file manager's resumable uploads, and scripts'):
the bytes received so far, kept in the state folder until the last piece arrives and
the whole file is stored in one write (one commit on git).

Each upload is one file ``<folder>/<key>.part`` beside a small ``<key>.json`` that says
whose upload it is, to which path and how long it will be; ``key`` is a hash of the
mount, the path, the user and the client's upload id, so nobody reaches another user's
upload. A piece is appended in place (a piece cut short leaves its bytes received so
far, and the client goes on from the offset it is told). Uploads not touched for
``max_age`` seconds are removed by the next sweep.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from davserver.runtime.threads import offload

MAX_AGE = 24 * 3600.0


class Busy(Exception):
    """Another piece of the same upload is being received."""


@dataclass(frozen=True, slots=True)
class Upload:
    """What an upload is for."""

    mount: str
    path: str
    user: str
    length: int


class UploadStore:
    """Uploads in pieces below ``folder`` (made when first needed)."""

    def __init__(self, folder: Path, max_age: float = MAX_AGE) -> None:
        self.folder = folder
        self.max_age = max_age

    def key(self, mount: str, path: str, user: str, upload_id: str) -> str:
        """The name of an upload's files."""
        raw = "\0".join((mount, path, user, upload_id)).encode("utf-8", "surrogateescape")
        return hashlib.sha256(raw).hexdigest()

    def _part(self, key: str) -> Path:
        return self.folder / f"{key}.part"

    def _meta(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    async def find(self, key: str) -> tuple[Upload, int] | None:
        """The upload and the bytes received so far (None: no such upload)."""

        def read() -> tuple[Upload, int] | None:
            try:
                meta = json.loads(self._meta(key).read_text())
                return Upload(**meta), self._part(key).stat().st_size
            except (OSError, ValueError, TypeError):
                return None

        return await offload(read)

    async def start(self, key: str, upload: Upload) -> None:
        """Begin an upload (nothing received yet)."""

        def create() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._sweep()
            self._part(key).write_bytes(b"")
            self._meta(key).write_text(json.dumps(asdict(upload)))

        await offload(create)

    async def append(self, key: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        """Add a piece at ``offset``, which must be the bytes held (else nothing is
        written); the bytes held afterwards (what arrived stays, even when the piece is
        cut short). A piece of the same upload under way meanwhile raises Busy."""

        def begin() -> BinaryIO:
            file = open(self._part(key), "ab")  # noqa: SIM115 - closed below
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                file.close()
                raise Busy("another piece of this upload is being received") from exc
            return file

        file = await offload(begin)
        try:
            if int((await offload(os.fstat, file.fileno())).st_size) == offset:
                async for chunk in chunks:
                    await offload(file.write, chunk)
                await offload(file.flush)
            return int((await offload(os.fstat, file.fileno())).st_size)
        finally:
            await offload(file.close)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        """The bytes received, in pieces."""
        file: BinaryIO = await offload(open, self._part(key), "rb")
        try:
            while chunk := await offload(file.read, 1 << 20):
                yield chunk
        finally:
            await offload(file.close)

    async def drop(self, key: str) -> None:
        """Forget an upload."""

        def remove() -> None:
            for path in (self._part(key), self._meta(key)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        await offload(remove)

    def _sweep(self) -> None:
        """Remove uploads nobody touched for ``max_age`` seconds."""
        limit = time.time() - self.max_age
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < limit:
                        os.unlink(entry.path)
