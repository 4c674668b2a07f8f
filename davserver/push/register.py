"""What a ``push-register`` body asks for, read and checked: the Web Push subscription
(endpoint, the client's key and secret), the triggers, the wished expiry. A body that does
not hold a usable subscription is refused with the draft's preconditions (403)."""

from __future__ import annotations

import base64
import binascii
import email.utils
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from davserver.dav.errors import DAVError
from davserver.state.subscriptions import INFINITE, NONE

from .names import INVALID_SUBSCRIPTION, NO_SUPPORTED_TRIGGER, dav, p

AUTH_SECRET_BYTES = 16
"""An RFC 8291 authentication secret is 16 bytes."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A checked ``push-register`` request."""

    endpoint: str
    public_key: str
    """base64url without padding (whatever else the client sent around it is dropped)"""
    auth: str
    """base64url without padding"""
    content: int
    """NONE, 1 or INFINITE (the sync-level asked for)"""
    properties: int
    """NONE, 0, 1 or INFINITE (the depth asked for)"""
    expires: float | None
    """The wished end (seconds since the epoch), None when not given."""


def invalid(reason: str) -> DAVError:
    """403 invalid-subscription, for the log with ``reason``."""
    return DAVError(403, reason, condition=INVALID_SUBSCRIPTION)


def _b64url(text: str, what: str) -> bytes:
    text = text.strip()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"{what} is not base64url") from exc


def _canonical(raw: bytes) -> str:
    """What is stored: the decoded bytes again (base64 decoding skips characters outside
    its alphabet, so the text as sent could be padded with any amount of them)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _level(text: str | None, levels: dict[str, int], default: int) -> int:
    if text is None:
        return default
    return levels.get(text.strip().lower(), default)


_SYNC_LEVELS = {"1": 1, "infinite": INFINITE, "infinity": INFINITE}
_DEPTHS = {"0": 0, "1": 1, "infinite": INFINITE, "infinity": INFINITE}


def parse_register(root: etree._Element) -> Registration:
    """Read a ``push-register`` element (the caller has checked its name)."""
    web_push = root.find(f"{p('subscription')}/{p('web-push-subscription')}")
    if web_push is None:
        raise invalid("no web-push-subscription (the only transport served)")
    endpoint = (web_push.findtext(p("push-resource")) or "").strip()
    if not endpoint:
        raise invalid("no push-resource")
    encoding = web_push.findtext(p("content-encoding"))
    if encoding is not None and encoding.strip().lower() != "aes128gcm":
        raise invalid(f"content-encoding {encoding.strip()[:20]!r} (only aes128gcm is sent)")
    # The draft has called the client's key both names; DAVx5 sends subscription-public-key.
    key_el = web_push.find(p("subscription-public-key"))
    if key_el is None:
        key_el = web_push.find(p("client-public-key"))
    secret = web_push.findtext(p("auth-secret"))
    if key_el is None or secret is None:
        raise invalid("no public key and auth secret (messages are always encrypted)")
    if (key_el.get("type") or "p256dh").lower() != "p256dh":
        raise invalid(f"a public key of type {key_el.get('type', '')[:20]!r}, not p256dh")
    key = _b64url(key_el.text or "", "key")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError as exc:
        raise invalid("the public key is no P-256 point") from exc
    auth = _b64url(secret, "auth-secret")
    if len(auth) != AUTH_SECRET_BYTES:
        raise invalid(f"the auth-secret is not {AUTH_SECRET_BYTES} bytes")
    content, properties = NONE, NONE
    trigger = root.find(p("trigger"))
    if trigger is not None:
        update = trigger.find(p("content-update"))
        if update is not None:
            content = _level(update.findtext(dav("sync-level")), _SYNC_LEVELS, 1)
        update = trigger.find(p("property-update"))
        if update is not None:
            properties = _level(update.findtext(dav("depth")), _DEPTHS, 0)
    if content == NONE and properties == NONE:
        raise DAVError(403, "no trigger asked for", condition=NO_SUPPORTED_TRIGGER)
    expires = None
    text = root.findtext(p("expires"))
    if text is not None and text.strip():
        try:
            expires = email.utils.parsedate_to_datetime(text.strip()).timestamp()
        except (TypeError, ValueError, IndexError) as exc:
            raise invalid(f"expires {text.strip()[:40]!r} is not an HTTP date") from exc
    return Registration(endpoint, _canonical(key), _canonical(auth), content, properties, expires)
