"""The exception every protocol handler raises to refuse a request."""

from __future__ import annotations

from aiohttp import web

from .xml import XML_CONTENT_TYPE, error_body


class DAVError(Exception):
    """A refusal: an HTTP status, a reason for the log, and an optional RFC 4918
    precondition or postcondition element (a local name in the DAV: namespace, or a
    Clark name) with optional inner XML."""

    def __init__(
        self, status: int, reason: str = "", *, condition: str | None = None, inner: str = ""
    ) -> None:
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason
        self.condition = condition
        self.inner = inner

    def response(self) -> web.Response:
        """The answer to send for this refusal."""
        if self.condition:
            return web.Response(
                status=self.status,
                body=error_body(self.condition, self.inner),
                content_type=XML_CONTENT_TYPE,
                charset="utf-8",
            )
        return web.Response(status=self.status, text=(self.reason or "") + "\n")
