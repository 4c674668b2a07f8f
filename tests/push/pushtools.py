"""Helpers of the WebDAV-Push tests (importable as ``pushtools``): a server configuration
with push on, push-register bodies, and a small client."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from lxml import etree
from pushservice import NS, Client

from davserver.config import (
    AccessConfig,
    AuthConfig,
    Config,
    MountConfig,
    PushConfig,
    ServerConfig,
)

MakeServer = Callable[..., Awaitable[TestClient]]
"""Starts an in-process server with push on (the ``make_server`` fixture)."""
P = f"{{{NS}}}"
D = "{DAV:}"


def push_config(
    tmp_path: Path,
    *,
    backend: str = "filesystem",
    allow: tuple[str, ...] = ("127.0.0.1",),
    htpasswd: Path | None = None,
    access: AccessConfig | None = None,
    **push: Any,
) -> Config:
    """WebDAV at /dav (a folder, or a git repository, with the ``access`` rules given)
    and CalDAV at /cal, push on, with short merge and poll intervals; accounts from
    ``htpasswd``."""
    store: dict[str, Any] = (
        {"repo": tmp_path / "dav.git"} if backend == "git" else {"root": tmp_path / "dav"}
    )
    if backend == "filesystem":
        (tmp_path / "dav").mkdir(exist_ok=True)
    (tmp_path / "cal").mkdir(exist_ok=True)
    settings = {"merge_window": 0.05, "poll_interval": 0.1, **push}
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(
            MountConfig(
                path="/dav",
                type="webdav",
                backend=backend,
                access=access or AccessConfig(),
                **store,
            ),
            MountConfig(path="/cal", type="caldav", root=tmp_path / "cal"),
        ),
        push=PushConfig(enabled=True, allow_hosts=allow, **settings),
    )
    if htpasswd is not None:
        config = replace(config, auth=AuthConfig(htpasswd=htpasswd))
    return config


def register_body(
    client: Client | None = None,
    *,
    endpoint: str | None = None,
    content: str | None = "1",
    depth: str | None = None,
    expires: str | None = None,
    key: str | None = None,
    auth: str | None = None,
    key_name: str = "subscription-public-key",
    extra: str = "",
) -> bytes:
    """A push-register body for ``client`` (parts replaced or left out as asked)."""
    endpoint = endpoint if endpoint is not None else client.endpoint if client else ""
    key = key if key is not None else client.public_key if client else ""
    auth = auth if auth is not None else client.auth_secret if client else ""
    trigger = ""
    if content is not None:
        trigger += f"<P:content-update><D:sync-level>{content}</D:sync-level></P:content-update>"
    if depth is not None:
        trigger += f"<P:property-update><D:depth>{depth}</D:depth></P:property-update>"
    keys = (f'<P:{key_name} type="p256dh">{key}</P:{key_name}>' if key else "") + (
        f"<P:auth-secret>{auth}</P:auth-secret>" if auth else ""
    )
    when = f"<P:expires>{expires}</P:expires>" if expires else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><P:push-register xmlns:P="{NS}" xmlns:D="DAV:">'
        f"<P:subscription><P:web-push-subscription><P:push-resource>{endpoint}</P:push-resource>"
        f"{keys}</P:web-push-subscription></P:subscription><P:trigger>{trigger}</P:trigger>"
        f"{when}{extra}</P:push-register>"
    ).encode()


async def register(
    http: TestClient,
    path: str,
    client: Client | None = None,
    *,
    headers: dict[str, str] | None = None,
    **parts: Any,
) -> tuple[int, Any, bytes]:
    """POST a push-register body (``parts`` as for ``register_body``); the status,
    headers and body of the answer."""
    resp = await http.post(
        path,
        data=register_body(client, **parts),
        headers={"Content-Type": "application/xml", **(headers or {})},
    )
    return resp.status, resp.headers, await resp.read()


async def subscribe(http: TestClient, path: str, client: Client, **parts: Any) -> str:
    """Register ``client`` on ``path`` (which must succeed); the registration URL."""
    status, headers, body = await register(http, path, client, **parts)
    assert status == 201, (status, body)
    return str(headers["Location"])


TOKEN = re.compile(r"^http://davserver\.org/ns/sync/[0-9a-f]+-([0-9]+)$")


def seq(token: str | None) -> int:
    """The change number in a plain collection's sync token."""
    match = TOKEN.match(token or "")
    assert match, token
    return int(match[1])


def condition(body: bytes) -> str:
    """The precondition element of a DAV:error body."""
    root = etree.fromstring(body)
    assert root.tag == f"{D}error", body
    return str(root[0].tag)


def stored(tmp_path: Path) -> list[tuple[Any, ...]]:
    """The subscriptions in the state folder (every row, expired ones too)."""
    db = tmp_path / "state" / "push.sqlite3"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, mount, path, owner, endpoint FROM subscriptions").fetchall()
