"""What CGI scripts and WSGI applications share: request meta-variables, response headers."""

from __future__ import annotations

import re

from aiohttp import web

from davserver import __version__
from davserver.dav.identity import USER

SERVER_SOFTWARE = f"davserver/{__version__}"
# Never passed on to an application or back to the client: they describe one connection.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z").match
# Request headers never turned into HTTP_* variables: the body's own (they have their own
# variables), ``Proxy`` (httpoxy: it would become HTTP_PROXY, a proxy setting), and
# names with an underscore (X-Foo_Bar could pose as X-Foo-Bar).
_SKIPPED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH", "PROXY"})
# Once the server has authenticated the request, its credentials are not the app's business.
_SKIPPED_AFTER_LOGIN = _SKIPPED | {"AUTHORIZATION"}


def is_token(name: str) -> bool:
    """Whether ``name`` is a valid header field name."""
    return _TOKEN(name) is not None


def query_string(raw_path: str) -> str:
    """The query of a raw request target, still percent-encoded ("" when none)."""
    return raw_path.partition("?")[2].partition("#")[0]


def server_name(request: web.BaseRequest) -> str:
    """The host name the client asked for (Host header), else the address listened on."""
    host = request.headers.get("Host")
    if not host:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return str(sockname[0]) if sockname else "localhost"
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]


def server_port(request: web.BaseRequest) -> str:
    """The port the request came in on."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[1]) if sockname else "80"


def meta_variables(request: web.BaseRequest, script_name: str, path_info: str) -> dict[str, str]:
    """The RFC 3875 meta-variables of a request that CGI and WSGI have in common, with one
    ``HTTP_*`` variable per request header (repeated headers joined).

    REMOTE_USER is the user authentication put in ``request[USER]`` and AUTH_TYPE the
    scheme of its Authorization header; both are empty (NULL) for anonymous requests.
    """
    headers = request.headers
    user = request.get(USER) or ""
    env = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query_string(request.raw_path),
        "SERVER_NAME": server_name(request),
        "SERVER_PORT": server_port(request),
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "REMOTE_ADDR": request.remote or "",
        "REMOTE_USER": user,
        "AUTH_TYPE": headers.get("Authorization", "").partition(" ")[0] if user else "",
    }
    skipped = _SKIPPED_AFTER_LOGIN if user else _SKIPPED
    if "Content-Type" in headers:
        env["CONTENT_TYPE"] = headers["Content-Type"]
    if "Content-Length" in headers:
        env["CONTENT_LENGTH"] = headers["Content-Length"]
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key in skipped or "_" in name:
            continue
        key = "HTTP_" + key
        if key in env:
            env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            env[key] = value
    return env
