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
  without a preflight, unless its ``Content-Type`` is one that a form cannot send
  either, nor another origin without a preflight (a calendar client's POST of
  ``text/calendar`` to its outbox, RFC 6638, or an XML body: a WebDAV-Push registration
  or a sharing request, carry no such header).

WebDAV clients (drives, rclone, cadaver) send neither ``Origin`` nor ``Sec-Fetch-Site``
and are not affected.
"""

from __future__ import annotations

from aiohttp import web

from .errors import DAVError

UI_HEADER = "X-Davserver-UI"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
"""The types a form can send, and a page of another origin without a preflight (the
CORS-safelisted values of ``Content-Type``)."""


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
    if request.method == "POST" and request.headers.get(UI_HEADER) != "1" and _form(request):
        raise DAVError(403, f"a POST needs the {UI_HEADER} header")


def _form(request: web.Request) -> bool:
    """Whether another origin's page could send this POST without a preflight: no
    ``Content-Type``, or one a form sends."""
    value = request.headers.get("Content-Type")
    return value is None or value.split(";")[0].strip().lower() in FORM_TYPES
