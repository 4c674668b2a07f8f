"""The server's push keys, made on first start and kept in the state (the state folder, or
the database several hosts share: davserver/state/secrets.py): the VAPID key pair (RFC
8292) that signs every message, and the secret that push topics are derived from. Every
process of every host sharing the state has the same, whichever made them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid

from davserver.state.secrets import Secrets

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


def _new_vapid() -> bytes:
    vapid = Vapid()
    vapid.generate_keys()
    return bytes(vapid.private_pem())


async def load_keys(kept: Secrets) -> PushKeys:
    """The keys ``kept`` holds, made when missing."""
    pem = await kept.get(VAPID_FILE, _new_vapid)
    secret = await kept.get(TOPIC_FILE, lambda: secrets.token_bytes(32))
    return PushKeys(Vapid.from_pem(pem), secret)
