"""Request ids: one per request, in every log line written while it is handled.

The router sets :data:`current` when a request comes in (a context variable: each request
is its own asyncio task, and calls sent to worker threads carry the context along where
the log lines they write matter, the WSGI application's), and :class:`Filter` puts it on
every log record as ``request_id`` ("-" outside a request).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re

current: contextvars.ContextVar[str] = contextvars.ContextVar("davserver_request_id", default="-")
HEADER = "X-Request-Id"
# An id a proxy in front sent is kept when it is this plain; anything else is replaced.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z").match
_prefix = ""
_counter = itertools.count(1)


def _forget_prefix() -> None:
    global _prefix
    _prefix = ""


# A forked worker makes its own prefix (its pid); asking getpid() for every request
# instead would cost a system call each time.
os.register_at_fork(after_in_child=_forget_prefix)


def new(given: str | None = None) -> str:
    """The id of a new request: ``given`` (the client's ``X-Request-Id``) when it is
    plain, else this process's prefix and a counter (unique without a system call)."""
    global _prefix
    if given and _ACCEPTED(given):
        return given
    if not _prefix:  # the first request of this process
        _prefix = f"{os.getpid():x}-{os.urandom(3).hex()}-"
    return f"{_prefix}{next(_counter)}"


class Filter(logging.Filter):
    """Adds ``record.request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record."""
        record.request_id = current.get()
        return True
