"""The access log: aiohttp's line for each request, followed by the mount that answered."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse
from aiohttp.web_log import AccessLogger

from .mounts import MOUNT_PREFIX


class MountAccessLogger(AbstractAccessLogger):
    """Logs ``<aiohttp's format> mount=<path>``, e.g. ``... "curl/8.5.0" mount=/static``.

    Requests no mount took (404, and those refused before routing) show ``mount=-``.
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
        inner = self._by_mount.get(mount)
        if inner is None:
            # Mount paths cannot hold "%" (the config refuses it), so they are literal here.
            inner = AccessLogger(self.logger, f"{self.log_format} mount={mount}")
            self._by_mount[mount] = inner
        inner.log(request, response, time)
