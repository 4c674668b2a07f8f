"""Who a request acts for."""

from __future__ import annotations

from aiohttp import web

from davserver.state.shares import Grants

ANONYMOUS = "anonymous"
USER = web.RequestKey("davserver.user", str)
"""Where authentication puts the name of the user a request comes from."""
MAY_WRITE = web.RequestKey("davserver.may_write", bool)
"""Where the access rules say whether the request's user may change the mount (the
file manager shows its write controls only then)."""
AUTH_SOURCE = web.RequestKey("davserver.auth_source", str)
"""Which login source vouched for that user (``htpasswd``, ``ldap``, ``app-password``,
``proxy``), for the access log."""

GRANTS = web.RequestKey("davserver.grants", Grants)
"""Where the access check puts what the request's user may reach of other users' trees
(shares, davserver/state/shares.py)."""


def author(request: web.Request) -> str:
    """The user a change is recorded as and a lock belongs to (the authenticated user,
    once authentication sets ``request[USER]``)."""
    return request.get(USER) or ANONYMOUS
