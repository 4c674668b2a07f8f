"""The server's push keys, made on first start and kept in the state folder: the VAPID key
pair (RFC 8292) that signs every message, and the secret that push topics are derived
from. Several processes starting at once make them once: each writes its own candidate
under a temporary name and links it into place, and the link fails for all but the first
(every one then reads what the first made)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid

VAPID_FILE = "vapid.pem"
TOPIC_FILE = "topic.key"


def b64url(data: bytes) -> str:
    """Base64url without padding, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PushKeys:
    """The VAPID key and the topic secret of a server."""

    vapid: Vapid
    topic_secret: bytes

    @property
    def public_key(self) -> str:
        """The VAPID public key, an uncompressed P-256 point in base64url (what clients
        create their push subscriptions with)."""
        raw = self.vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def topic(self, mount: str, path: str) -> str:
        """The push topic of the collection ``path`` of ``mount``: stable, unique, and
        telling nothing of the collection to whoever sees it (a keyed hash)."""
        key = f"{mount}\0{path}".encode("utf-8", "surrogateescape")
        return b64url(hmac.new(self.topic_secret, key, hashlib.sha256).digest()[:16])


def _create_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of ``path``; when it does not exist, what ``make`` gives becomes them,
    unless another process gets there first (then its bytes are read)."""
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


def load_keys(folder: Path) -> PushKeys:
    """The keys kept in ``folder``, made when missing (blocking: call it off the loop)."""

    def new_vapid() -> bytes:
        vapid = Vapid()
        vapid.generate_keys()
        return bytes(vapid.private_pem())

    pem = _create_once(folder / VAPID_FILE, new_vapid)
    secret = _create_once(folder / TOPIC_FILE, lambda: secrets.token_bytes(32))
    return PushKeys(Vapid.from_pem(pem), secret)
