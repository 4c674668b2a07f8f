"""File checksums as ownCloud and Nextcloud clients use them (rclone's ``vendor =
nextcloud`` / ``owncloud``): the ``OC-Checksum`` header of an upload, checked before the
file is stored, and the ``oc:checksums`` property, which lists the SHA1 and MD5 of a file.

Checksums are worked out once per version of a file and kept in the state
(``state/checksums.py``): while an upload streams in (on the worker threads, never on
the event loop), or, for a file stored any other way, the first time a client asks.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from davserver.backends.base import Body, NotFound, Resource, Storage
from davserver.runtime.threads import offload
from davserver.state.checksums import ChecksumStore, Sums

from .context import ServiceKey
from .errors import DAVError

if TYPE_CHECKING:
    from .props import PropRenderer

OC_NS = "http://owncloud.org/ns"
CHECKSUMS = f"{{{OC_NS}}}checksums"
ALGORITHMS = {"MD5": "md5", "SHA1": "sha1"}
"""The names clients give (``OC-Checksum: SHA1:<hex>``) and hashlib's."""
_OFFLOAD = 64 << 10  # pieces this big are hashed on a worker thread


def parse_header(value: str) -> tuple[str, str]:
    """(hashlib name, lowercase hex) of an ``OC-Checksum`` header; 400 when it names an
    algorithm the server does not compute or is no hex digest."""
    name, sep, digest = value.strip().partition(":")
    algorithm = ALGORITHMS.get(name.strip().upper())
    digest = digest.strip().lower()
    size = hashlib.new(algorithm).digest_size * 2 if algorithm else 0
    if not sep or algorithm is None or len(digest) != size:
        raise DAVError(400, f"OC-Checksum {value!r}: expected MD5:<hex> or SHA1:<hex>")
    try:
        bytes.fromhex(digest)
    except ValueError as exc:
        raise DAVError(400, f"OC-Checksum {value!r}: not a hex digest") from exc
    return algorithm, digest


class Hasher:
    """MD5 and SHA1 of bytes fed in order."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        """Hash more bytes (hashlib lets go of the GIL for big pieces)."""
        self._md5.update(data)
        self._sha1.update(data)

    async def feed(self, data: bytes) -> None:
        """Hash more bytes, a big piece on a worker thread."""
        if len(data) >= _OFFLOAD:
            await offload(self.update, data)
        else:
            self.update(data)

    def sums(self) -> dict[str, str]:
        """The hex digests by hashlib name."""
        return {"md5": self._md5.hexdigest(), "sha1": self._sha1.hexdigest()}


def check(sums: Sums, expected: tuple[str, str] | None) -> None:
    """ValueError when the body's digest is not the one the client announced."""
    if expected is not None and sums[expected[0]] != expected[1]:
        raise ValueError(f"OC-Checksum mismatch: the body's {expected[0]} is {sums[expected[0]]}")


async def hashed(
    body: AsyncIterator[bytes], hasher: Hasher, expected: tuple[str, str] | None
) -> AsyncIterator[bytes]:
    """The chunks of ``body``, hashed as they pass; at the end, before the backend may
    store anything, a digest that is not the one announced stops the upload (the backend
    discards it)."""
    async for chunk in body:
        await hasher.feed(chunk)
        yield chunk
    check(hasher.sums(), expected)


def render(sums: Sums) -> str:
    """The ``oc:checksums`` element: one ``oc:checksum`` holding every digest, as
    ownCloud writes it."""
    return (
        f'<oc:checksums xmlns:oc="{OC_NS}"><oc:checksum>SHA1:{sums["sha1"]} '
        f"MD5:{sums['md5']}</oc:checksum></oc:checksums>"
    )


def header(sums: Sums, algorithm: str = "sha1") -> str:
    """An ``OC-Checksum`` header value."""
    name = next(k for k, v in ALGORITHMS.items() if v == algorithm)
    return f"{name}:{sums[algorithm]}"


async def _hash_body(body: Body) -> dict[str, str]:
    hasher = Hasher()
    if body.data is not None:
        await hasher.feed(body.data)
        return hasher.sums()
    file = body.file
    assert file is not None
    try:
        while chunk := await offload(file.read, 1 << 20):
            await hasher.feed(chunk)
    finally:
        await offload(file.close)
    return hasher.sums()


@dataclass(frozen=True, slots=True)
class Checksums:
    """The checksums of one tree's files (a service of the tree: :data:`SERVICE`)."""

    store: ChecksumStore
    mount: str

    async def remember(self, etag: str, sums: Sums) -> None:
        """Keep the checksums of the version ``etag``."""
        await self.store.put(self.mount, etag, sums)

    async def of(self, storage: Storage, resources: Sequence[Resource]) -> dict[str, Sums]:
        """The checksums of files by ETag: those known, and those not, computed now
        from the stored bytes (once: they are kept)."""
        files = [r for r in resources if not r.is_collection]
        found: dict[str, Sums] = dict(await self.store.get(self.mount, [r.etag for r in files]))
        for res in files:
            if res.etag in found:
                continue
            try:
                body = await storage.read(res.path, inline_limit=1 << 20)
            except NotFound:
                continue
            sums = await _hash_body(body)
            if body.resource.etag != res.etag:  # replaced meanwhile: these are not its
                continue
            found[res.etag] = sums
            await self.remember(res.etag, sums)
        return found

    async def annotate(
        self, storage: Storage, renderer: PropRenderer, batch: list[Resource]
    ) -> None:
        """Put the ``oc:checksums`` of the batch's files into the renderer, when the
        request names it."""
        if CHECKSUMS not in renderer.request.names:
            return
        known = await self.of(storage, batch)
        for res in batch:
            sums = known.get(res.etag) if not res.is_collection else None
            if sums is not None:
                renderer.values[(res.path, CHECKSUMS)] = render(sums)


SERVICE: ServiceKey[Checksums] = ServiceKey("checksums")
