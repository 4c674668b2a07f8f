"""PROPFIND on the server root when no mount holds ``/``.

Windows' WebClient probes the host root before mapping a sub-path, and calendar clients
often start their discovery there (CLIENTS.md #2, #15). The root is then a virtual
collection whose members are the mounts' first path segments, with the CalDAV mount's
discovery properties (current-user-principal, calendar-home-set) when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiohttp import web

from davserver.backends.base import virtual_collection

from .dav import acl, multistatus
from .dav.errors import DAVError
from .dav.features import Discovery
from .dav.identity import USER
from .dav.propfind import propfind_depth, read_prop_request, wants_minimal
from .dav.props import LIVE, LiveRenderer, PropRenderer

_STARTED = time.time()


def top_segments(prefixes: Iterable[str]) -> list[str]:
    """The first path segment of each mount prefix, once each, in order."""
    return sorted({p.strip("/").partition("/")[0] for p in prefixes if p.strip("/")})


async def propfind(
    request: web.Request, prefixes: Iterable[str], discovery: list[Discovery], limit: int,
    max_props: int,
) -> web.Response:  # fmt: skip
    """The root and (Depth 1) the mounts below it; Depth infinity is refused as mounts
    refuse it by default (403 propfind-finite-depth)."""
    try:
        depth = propfind_depth(request, infinity=False)
        prop_request = await read_prop_request(request, limit, max_props)
    except DAVError as exc:
        return exc.response()
    live: dict[str, LiveRenderer] = dict(LIVE)
    for offer in discovery:
        live.update(offer(request.get(USER)))
    # Whoever gets here may read it: anyone, or (with accounts) those who logged in.
    live.update(acl.read_only_properties(request.get(USER) is not None))
    renderer = PropRenderer("", prop_request, live=live, minimal=wants_minimal(request))
    members = top_segments(prefixes) if depth == "1" else []
    collections = (virtual_collection(p, _STARTED) for p in ["", *members])
    return multistatus.complete("".join(renderer.render(c) for c in collections))
