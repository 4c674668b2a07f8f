"""Who may do what on a mount: the access level of a request by method.

A mount's ``access`` table gives anonymous and authenticated requests a level each:
``off``, ``read-only`` (the methods that change nothing) or ``read-write``, and members of
the groups it names the level of their group when that is higher. Which user's
tree a path lies in (owner-only trees) is the mount's business (``DavMount.check_owner``).
"""

from __future__ import annotations

import logging

from aiohttp import web

from .auth.basic import challenge
from .config import AccessConfig
from .dav.identity import MAY_WRITE

log = logging.getLogger("davserver.access")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
"""The methods a read-only level allows on a DAV tree: none of them changes anything."""
SITE_READ_METHODS = frozenset({"GET", "HEAD"})
"""The methods a read-only level allows on a static, CGI or WSGI mount: what a script or
an application does with any other method (OPTIONS included) is its own business."""


def allows(level: str, method: str, reads: frozenset[str] = READ_METHODS) -> bool:
    """Whether an access level lets a request with ``method`` through (``reads``: what
    read-only allows on the mount)."""
    return level == "read-write" or (level == "read-only" and method in reads)


def admit(
    request: web.Request,
    rules: AccessConfig,
    user: str | None,
    accounts: bool,
    reads: frozenset[str] = READ_METHODS,
    groups: frozenset[str] = frozenset(),
) -> web.Response | None:
    """None when the mount's rules let the request in (``reads``: what read-only allows
    there; ``groups``: the user's, for the rules by group); else the answer: 401 for an
    anonymous request that could log in, 403 otherwise (and a log line)."""
    level = rules.level(user, groups)
    request[MAY_WRITE] = level == "read-write"
    if allows(level, request.method, reads):
        return None
    if user is None and accounts:
        return challenge()
    log.info(
        "%s %s refused: 403, %s access is %s",
        request.method,
        request.raw_path,
        "anonymous" if user is None else f"{user!r}'s",
        level,
    )
    return web.Response(status=403, text="403 Forbidden\n")
