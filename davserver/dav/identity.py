"""Who a request acts for."""

from __future__ import annotations

import re

from aiohttp import web

from davserver.state.shares import Grants

ANONYMOUS = "anonymous"
# No leading dot: such names are the stores' own folders (the address books' .addressbooks).
_USER = re.compile(r"^(?!\.)[^:\s/\\\x00-\x1f]{1,64}$")
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


def valid_user_name(name: str) -> bool:
    """Whether ``name`` can be an account (no colon, slash, space or control character,
    and no dot first)."""
    return bool(_USER.match(name))
