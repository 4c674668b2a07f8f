"""A Web Push service for the tests (importable as ``pushservice``): an aiohttp app on a
loopback port, in a thread of its own (so that tests of server processes, which block,
can use it too). It hands out subscriptions (a P-256 key pair and an auth secret each),
and for every message POSTed to one it checks the VAPID token (RFC 8292, with PyJWT),
decrypts the body with the subscription's private key (RFC 8291, with http-ece), reads
the push-message and records it."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import http_ece
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import free_port
from lxml import etree

NS = "https://bitfire.at/webdav-push"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Client:
    """One push subscription of a user agent."""

    name: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def public_key(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    @property
    def auth_secret(self) -> str:
        return b64url(self.auth)


@dataclass
class Received:
    """One message as the service got it, decrypted."""

    topic: str
    content: bool
    properties: bool
    token: str | None
    headers: dict[str, str]
    arrived: float = field(default_factory=time.monotonic)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class PushService:
    """The service; ``start()`` it, then hand its clients' endpoints to the server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.clients: dict[str, Client] = {}
        self.received: dict[str, list[Received]] = {}
        self.rejected: list[str] = []
        self.answers: dict[str, int] = {}
        """A status to answer a subscription's messages with, instead of 201."""
        self.redirects: dict[str, str] = {}
        """Where to redirect a subscription's messages (307)."""
        self.delay = 0.0
        self.vapid_key: str | None = None
        """The server's VAPID public key, when the test knows it: tokens must carry it."""
        self.hits = 0
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- life -------------------------------------------------------------------------------

    def start(self) -> PushService:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/push/{name}", self._receive)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- clients ----------------------------------------------------------------------------

    def client(self, name: str, host: str = "127.0.0.1") -> Client:
        """A new subscription at the service (its endpoint naming ``host``)."""
        found = Client(
            name,
            f"http://{host}:{self.port}/push/{name}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        self.clients[name] = found
        return found

    def messages(self, name: str) -> list[Received]:
        with self._cond:
            return list(self.received.get(name, []))

    def wait(self, name: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` messages of ``name`` (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received.get(name, [])) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{name}: {self.received.get(name, [])} after {timeout}s"
                self._cond.wait(left)
            return list(self.received[name])

    async def await_messages(self, name: str, count: int, timeout: float = 10.0) -> list[Received]:
        """:meth:`wait` for async tests."""
        return await asyncio.to_thread(self.wait, name, count, timeout)

    # -- the endpoint -----------------------------------------------------------------------

    def _reject(self, reason: str, status: int = 400) -> web.Response:
        with self._cond:
            self.rejected.append(reason)
            self._cond.notify_all()
        return web.Response(status=status, text=reason)

    def _check_vapid(self, request: web.Request, client: Client) -> str | None:
        """What is wrong with the request's VAPID token (None: nothing)."""
        scheme, _, params = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "vapid":
            return f"authorization scheme {scheme!r}"
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = parts.get("t", ""), parts.get("k", "")
        if self.vapid_key is not None and key != self.vapid_key:
            return "signed with another key than the server advertises"
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
            claims = jwt.decode(
                token, public, algorithms=["ES256"], audience=_origin(client.endpoint),
                options={"require": ["exp", "aud", "sub"]},
            )  # fmt: skip
        except (jwt.PyJWTError, ValueError) as exc:
            return f"VAPID token refused: {exc}"
        if claims["exp"] > time.time() + 24 * 3600:
            return "VAPID token valid for more than 24 hours"
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return f"VAPID sub {claims['sub']!r}"
        return None

    async def _receive(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits += 1
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        if name in self.redirects:
            raise web.HTTPTemporaryRedirect(self.redirects[name])
        client = self.clients.get(name)
        if client is None:
            return self._reject(f"unknown subscription {name}", 404)
        problem = self._check_vapid(request, client)
        if problem is not None:
            return self._reject(problem, 401)
        for header in ("TTL", "Topic", "Urgency"):
            if header not in request.headers:
                return self._reject(f"no {header} header")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._reject("not aes128gcm")
        try:
            plain = http_ece.decrypt(
                body, private_key=client.private_key, auth_secret=client.auth, version="aes128gcm"
            )
        except Exception as exc:
            return self._reject(f"cannot decrypt: {exc!r}")
        root = etree.fromstring(plain)
        if root.tag != f"{{{NS}}}push-message":
            return self._reject(f"not a push-message: {plain[:100]!r}")
        answer = self.answers.get(name, 201)
        received = Received(
            topic=root.findtext(f"{{{NS}}}topic") or "",
            content=root.find(f"{{{NS}}}content-update") is not None,
            properties=root.find(f"{{{NS}}}property-update") is not None,
            token=root.findtext(f"{{{NS}}}content-update/{{DAV:}}sync-token"),
            headers=dict(request.headers),
        )
        if answer < 300:
            with self._cond:
                self.received.setdefault(name, []).append(received)
                self._cond.notify_all()
        return web.Response(status=answer)
