"""Delivery of one push message to one endpoint (RFC 8030): the ``push-message`` body
encrypted for the subscription (RFC 8291, by pywebpush and http-ece), the request signed
with the server's VAPID key (RFC 8292, by py-vapid), POSTed through a connection the
endpoint rules guard (endpoints.py); the push service's answer says what happens next.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from py_vapid import VapidException

from davserver.dav.xml import XML_DECL, escape
from davserver.runtime.threads import offload
from davserver.state.subscriptions import Subscription

from .endpoints import EndpointPolicy, EndpointRefused, GuardedResolver
from .keys import PushKeys
from .names import NS
from .settings import PushSettings

log = logging.getLogger("davserver.push")

MAX_REDIRECTS = 3
VAPID_LIFETIME = 12 * 3600
"""Seconds a VAPID token is valid (RFC 8292 allows up to 24 hours)."""


class Outcome(enum.Enum):
    """What became of a delivery attempt."""

    DELIVERED = "delivered"
    GONE = "gone"
    """The push service no longer knows the subscription (404, 410): drop it."""
    RETRY = "retry"
    """A failure that may pass (network, 429, 5xx): try again later."""
    FAILED = "failed"
    """A failure trying again will not mend (refused endpoint, other 4xx)."""


@dataclass(frozen=True, slots=True)
class Result:
    """An attempt's outcome, with the push service's Retry-After (seconds) if any."""

    outcome: Outcome
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """What one subscription is to be told."""

    sub: Subscription
    topic: str
    content: bool
    properties: bool
    token: str | None
    """The collection's sync token after the change (content updates)."""

    def merged(self, newer: Message) -> Message:
        """This message and a later one for the same subscription, as one: the later
        token, and every kind of update either carries."""
        return Message(
            newer.sub,
            newer.topic,
            self.content or newer.content,
            self.properties or newer.properties,
            newer.token if newer.content else self.token,
        )

    def body(self) -> bytes:
        """The ``push-message`` XML."""
        parts = [f"<P:topic>{escape(self.topic)}</P:topic>"]
        if self.content:
            token = f"<D:sync-token>{escape(self.token)}</D:sync-token>" if self.token else ""
            parts.append(f"<P:content-update>{token}</P:content-update>")
        if self.properties:
            parts.append("<P:property-update/>")
        return (
            f'{XML_DECL}<P:push-message xmlns:D="DAV:" xmlns:P="{NS}">'
            f"{''.join(parts)}</P:push-message>\n"
        ).encode()

    def topic_header(self) -> str:
        """The ``Topic`` header (RFC 8030 §5.4): a waiting message of the same kinds of
        update for the same collection is replaced by this one; the collection's topic
        tells the push service nothing about it."""
        kinds = "b" if self.content and self.properties else "c" if self.content else "p"
        return f"{self.topic}{kinds}"


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


class Sender:
    """Sends messages over one HTTP client session (opened and closed with the feature)."""

    def __init__(self, keys: PushKeys, policy: EndpointPolicy, settings: PushSettings) -> None:
        self._keys = keys
        self._policy = policy
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Start the client session (its connector resolves through the guard)."""
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._policy), limit=64, ttl_dns_cache=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _encrypt(self, sub: Subscription, body: bytes) -> bytes:
        """The body encrypted for the subscription (aes128gcm, RFC 8291); ValueError when
        it cannot be. pywebpush is imported at the first push: with the HTTP client it
        brings, it weighs 8 MiB in every worker, most of which never push."""
        from pywebpush import WebPusher, WebPushException

        try:
            pusher = WebPusher(
                {"endpoint": sub.endpoint, "keys": {"p256dh": sub.public_key, "auth": sub.auth}}
            )
            return bytes(pusher.encode(body, "aes128gcm")["body"])
        except WebPushException as exc:
            raise ValueError(str(exc)) from exc

    def _authorization(self, url: str) -> str:
        """The VAPID ``Authorization`` header for a request to ``url``."""
        parts = urlsplit(url)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "sub": self._settings.contact,
            "exp": int(time.time()) + VAPID_LIFETIME,
        }
        return str(self._keys.vapid.sign(claims)["Authorization"])

    async def send(self, message: Message) -> Result:
        """One delivery attempt (following at most a few redirects, each checked)."""
        session = self._session
        if session is None:
            return Result(Outcome.RETRY)
        sub = message.sub
        try:
            payload = await offload(self._encrypt, sub, message.body())
        except ValueError as exc:
            log.warning("push to %s: cannot encrypt: %s", sub.endpoint, exc)
            return Result(Outcome.FAILED)
        url = sub.endpoint
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                self._policy.check_url(url)
                authorization = await offload(self._authorization, url)
            except (EndpointRefused, VapidException) as exc:
                log.warning("push to %s refused: %s", url, exc)
                return Result(Outcome.FAILED)
            headers = {
                "Authorization": authorization,
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/xml; charset=utf-8",
                "TTL": str(self._settings.ttl),
                "Topic": message.topic_header(),
                "Urgency": "normal",
            }
            try:
                async with session.post(
                    url, data=payload, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    location = resp.headers.get("Location")
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.info("push to %s failed: %s", url, exc or type(exc).__name__)
                return Result(Outcome.RETRY)
            if 200 <= status < 300:
                return Result(Outcome.DELIVERED)
            if status in (404, 410):
                log.info("push to %s: %d, the subscription is gone", url, status)
                return Result(Outcome.GONE)
            if status in (307, 308) and location:
                url = urljoin(url, location)
                continue
            if status == 429 or status >= 500:
                log.info("push to %s: %d, to be tried again", url, status)
                return Result(Outcome.RETRY, retry_after)
            log.warning("push to %s: refused with %d", url, status)
            return Result(Outcome.FAILED)
        log.warning("push to %s: more than %d redirects", sub.endpoint, MAX_REDIRECTS)
        return Result(Outcome.FAILED)
