"""The end of every request: its access log line (the combined format followed by the
mount that answered and the login source that vouched for the user, or a JSON object) and
its count in the metrics."""

from __future__ import annotations

import logging
import time as clock

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .dav.identity import AUTH_SOURCE, USER
from .mounts import MOUNT_PREFIX
from .runtime import metrics


class MountAccessLogger(AbstractAccessLogger):
    """Logs ``<combined format> mount=<path> auth=<source>``, e.g.
    ``127.0.0.1 - ann [05/Dec/2026:17:08:29 +0000] "GET /f HTTP/1.1" 200 5 "-" "curl/8.5.0"
    mount=/files auth=ldap``; with ``as_json``, the same fields as one JSON object.

    Requests no mount took (404, and those refused before routing) show ``mount=-``;
    anonymous ones ``auth=-``.
    """

    as_json = False
    lines = True
    """Whether lines are written (``[server] access_log``); metrics are counted anyway."""

    def __init__(self, logger: logging.Logger, log_format: str = "") -> None:
        super().__init__(logger, log_format)
        self._second = -1
        self._stamp = ""

    @classmethod
    def configured(cls, *, as_json: bool, lines: bool) -> type[MountAccessLogger]:
        """The class aiohttp is to make its access logger from."""
        return type("MountAccessLogger", (cls,), {"as_json": as_json, "lines": lines})

    @property
    def enabled(self) -> bool:
        """Whether there is anything to do at the end of a request."""
        return (self.lines and self.logger.isEnabledFor(logging.INFO)) or (
            metrics.active is not None
        )

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = clock.strftime("[%d/%b/%Y:%H:%M:%S +0000]", clock.gmtime(second))
        return self._stamp

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the line of one request and count it."""
        # The router notes the mount it gave the request to; requests refused before
        # (a bad request head, a body over max_body_size, the access rules) have none.
        found = request.get(MOUNT_PREFIX)
        mount = "-" if found is None else found or "/"
        sent = response.body_length
        counted = metrics.active
        if counted is not None:
            read = request.content.total_bytes if request.body_exists else 0
            counted.request_done(mount, request.method, response.status, time, read, sent)
        if not self.lines or not self.logger.isEnabledFor(logging.INFO):
            return
        user = request.get(USER) or "-"
        auth = request.get(AUTH_SOURCE) or "-"
        headers = request.headers
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        if self.as_json:
            fields = {
                "client": request.remote or "-", "user": user, "method": request.method,
                "path": request.raw_path, "protocol": version, "status": response.status,
                "bytes": sent, "referer": headers.get("Referer", ""),
                "user_agent": headers.get("User-Agent", ""), "mount": mount, "auth": auth,
                "duration": round(time, 6),
            }  # fmt: skip
            self.logger.info("%s %s %s", request.method, request.raw_path, response.status,
                             extra={"access": fields})  # fmt: skip
            return
        self.logger.info(
            '%s - %s %s "%s %s %s" %d %d "%s" "%s" mount=%s auth=%s',
            request.remote or "-", user, self._time(clock.time()),
            request.method, request.raw_path, version, response.status, sent,
            headers.get("Referer", "-"), headers.get("User-Agent", "-"), mount, auth,
        )  # fmt: skip
