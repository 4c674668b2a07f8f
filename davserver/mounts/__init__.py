"""Mounts: what serves the requests under one path prefix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web


class Mount(Protocol):
    """Anything that answers the requests below ``prefix`` ("" for a mount at /)."""

    prefix: str

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request whose path lies under the prefix."""

    async def open(self) -> None:
        """Prepare what the mount needs before the first request."""

    async def close(self) -> None:
        """Release what the mount holds."""


Dispatch = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The router's entry point, for a mount that answers with another URL's answer
# (a CGI local redirect).
DISPATCH = web.AppKey[Dispatch]("davserver.dispatch")

MOUNT_PREFIX = web.RequestKey("davserver.mount_prefix", str)
"""The prefix of the mount a request was routed to (for the access log)."""
