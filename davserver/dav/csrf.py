"""Cross-site request forgery: no other web site may make a visitor's browser change
anything here.

The web file manager (docs/browser.md) writes with ordinary WebDAV requests sent by
``fetch()``. A page of another site cannot send those methods cross-origin without a
CORS preflight, which this server never grants; but it can submit a form (a POST) or
ask a browser to send anything a preflight lets through, and the browser then adds the
visitor's credentials. So a request that changes something:

- is refused (403) when the browser says it comes from another site: a
  ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` (typed by the user), or an
  ``Origin`` that is not this server's own (scheme, host and port of the request);
- and a POST (the file manager's own operations: restoring a version) must carry the
  header ``X-Davserver-UI: 1``, which a form cannot set and another origin cannot send
  without a preflight, or an XML body (the sharing requests of CalDAV clients), which a
  form cannot send either.

WebDAV clients (drives, rclone, cadaver) send neither ``Origin`` nor ``Sec-Fetch-Site``
and are not affected.
"""

from __future__ import annotations

from aiohttp import web

from .errors import DAVError

UI_HEADER = "X-Davserver-UI"
XML_TYPES = ("application/xml", "text/xml")
"""A POST with an XML body (CalDAV sharing) needs no UI header: a form cannot send one,
and another origin cannot without a preflight."""


def _own_origin(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-Proto")
    scheme = forwarded.split(",")[0].strip() if forwarded else request.scheme
    return f"{scheme}://{request.host}".lower()


def check(request: web.Request) -> None:
    """Refuse (403) a write a browser sends on behalf of another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        raise DAVError(403, f"a {request.method} from another site ({site}) is refused")
    origin = request.headers.get("Origin")
    if origin is not None and origin.strip().lower() != _own_origin(request):
        raise DAVError(403, f"a {request.method} from the origin {origin!r} is refused")
    if (
        request.method == "POST"
        and request.headers.get(UI_HEADER) != "1"
        and request.content_type not in XML_TYPES
    ):
        raise DAVError(403, f"a POST needs the {UI_HEADER} header")
