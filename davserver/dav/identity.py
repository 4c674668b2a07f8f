"""Who a request acts for."""

from __future__ import annotations

from aiohttp import web

ANONYMOUS = "anonymous"


def author(request: web.Request) -> str:
    """The user a change is recorded as and a lock belongs to (the authenticated user,
    once authentication sets ``request["user"]``)."""
    return request.get("user") or ANONYMOUS
