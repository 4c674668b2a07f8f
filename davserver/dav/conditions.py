"""Conditional requests (RFC 9110 §13): If-Match, If-None-Match, If-(Un)Modified-Since."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

from multidict import CIMultiDictProxy

from davserver.backends.base import Resource

_ETAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


def parse_etags(value: str) -> list[tuple[bool, str]] | None:
    """An entity-tag list as (weak, tag) pairs; None for ``*``; [] when unparseable."""
    if value.strip() == "*":
        return None
    return [(bool(m.group(1)), m.group(2)) for m in _ETAG.finditer(value)]


def _http_date(value: str) -> float | None:
    return parse_http_date(value)


def parse_http_date(value: str) -> float | None:
    """Seconds since the epoch of an HTTP date (None when it is none)."""
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def evaluate(
    headers: CIMultiDictProxy[str], resource: Resource | None, *, safe_method: bool
) -> int | None:
    """The status that the preconditions impose (304 or 412), or None to go on."""
    if_match = headers.get("If-Match")
    if if_match is not None:
        tags = parse_etags(if_match)
        if resource is None:
            return 412
        if tags is not None and not any(not weak and tag == resource.etag for weak, tag in tags):
            return 412
    elif resource is not None and "If-Unmodified-Since" in headers:
        since = _http_date(headers["If-Unmodified-Since"])
        if since is not None and int(resource.mtime) > since:
            return 412
    if_none = headers.get("If-None-Match")
    if if_none is not None:
        tags = parse_etags(if_none)
        if resource is not None and (
            tags is None or any(tag == resource.etag for _weak, tag in tags)
        ):
            return 304 if safe_method else 412
    elif safe_method and resource is not None and "If-Modified-Since" in headers:
        since = _http_date(headers["If-Modified-Since"])
        if since is not None and int(resource.mtime) <= since:
            return 304
    return None


def if_range_holds(value: str, resource: Resource) -> bool:
    """Whether an If-Range validator still matches, so the Range applies."""
    value = value.strip()
    if value.startswith('"'):
        return value == resource.etag
    if value.startswith("W/"):
        return False
    since = _http_date(value)
    return since is not None and int(resource.mtime) == since
