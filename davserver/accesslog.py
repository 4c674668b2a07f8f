"""The access log: aiohttp's line for each request, followed by the mount that answered
and the login source that vouched for the user."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse
from aiohttp.web_log import AccessLogger

from .dav.identity import AUTH_SOURCE
from .mounts import MOUNT_PREFIX


class MountAccessLogger(AbstractAccessLogger):
    """Logs ``<aiohttp's format> mount=<path> auth=<source>``, e.g.
    ``... "curl/8.5.0" mount=/static auth=ldap``.

    Requests no mount took (404, and those refused before routing) show ``mount=-``;
    anonymous ones ``auth=-``.
    """

    def __init__(self, logger: logging.Logger, log_format: str = AccessLogger.LOG_FORMAT) -> None:
        super().__init__(logger, log_format)
        self._by_mount: dict[str, AccessLogger] = {}

    @property
    def enabled(self) -> bool:
        """Whether lines at INFO would be written at all."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the line of one request."""
        # The router notes the mount it gave the request to; requests refused before
        # (a bad request head, a body over max_body_size, the access rules) have none.
        found = request.get(MOUNT_PREFIX)
        mount = "-" if found is None else found or "/"
        tail = f"mount={mount} auth={request.get(AUTH_SOURCE) or '-'}"
        inner = self._by_mount.get(tail)
        if inner is None:
            # Mount paths cannot hold "%" (the config refuses it), nor the sources (fixed
            # names), so they are literal here.
            inner = AccessLogger(self.logger, f"{self.log_format} {tail}")
            self._by_mount[tail] = inner
        inner.log(request, response, time)
