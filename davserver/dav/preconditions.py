"""The conditions a request sets on a write, checked twice: before anything is read or
written (so a failing request gets its 412 at once) and again inside the write, against
the very resource it replaces (``backends.base.Precondition``), so that of two racing
conditional writes only one can succeed.

- ``If-Match``, ``If-None-Match`` and ``If-Unmodified-Since`` concern the request URL.
- The ``If`` header (RFC 4918 §10.4) may name other resources in tagged lists. It is
  evaluated once before the method runs (412 when no list holds) with the state of each
  resource it names: a resource the requester may not read (another user's tree, another
  mount) counts as no resource at all, is not even looked up, and so changes nothing in
  the answer. Inside a write, the ETag of the path being replaced is put in afresh and the
  lists are evaluated again.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from davserver.backends.base import Precondition, PreconditionFailed, Resource

from . import conditions, ifheader
from .context import Context
from .errors import DAVError
from .paths import destination_raw_path


@dataclass(frozen=True, slots=True)
class IfHeader:
    """An evaluated If header: its lists, the states it was evaluated with, and the
    storage path each tag names (None: the request URL; absent: not in this tree)."""

    lists: list[ifheader.IfList]
    states: ifheader.States
    paths: dict[str | None, str]

    @property
    def submitted(self) -> frozenset[str]:
        """The lock tokens the header submits."""
        return frozenset(ifheader.submitted_tokens(self.lists))


IF_HEADER = web.RequestKey("davserver.if_header", IfHeader)
_CONDITIONAL = ("If-Match", "If-None-Match", "If-Unmodified-Since")


def _tagged_path(ctx: Context, tag: str) -> str | None:
    """The storage path a resource tag names, when it is in this tree and the requester
    may read it; None otherwise."""
    try:
        raw = destination_raw_path(tag, ctx.request.host)
        if not ctx.contains(raw):
            return None
        path = ctx.storage_path(raw)
    except DAVError:
        return None
    return path if ctx.may_enter(path) else None


async def check_if_header(ctx: Context) -> None:
    """Evaluate the request's If header: 412 when no list holds; remember it (the tokens
    it submits, and what a write must check again)."""
    lists = ifheader.parse(ctx.request.headers["If"])
    paths: dict[str | None, str] = {None: ctx.path}
    for lst in lists:
        if lst.resource is not None and lst.resource not in paths:
            found = _tagged_path(ctx, lst.resource)
            if found is not None:
                paths[lst.resource] = found

    async def state_of(tag: str | None) -> ifheader.ResourceState | None:
        target = paths.get(tag)
        if target is None:
            return None  # not a resource the requester may know about: nothing looked up
        res = await ctx.storage.stat(target)
        tokens = frozenset(lock.token for lock in ctx.locks.covering(ctx.prefix, target))
        return ifheader.ResourceState(res.etag if res else None, tokens)

    states = await ifheader.gather(lists, state_of)
    if not ifheader.holds(lists, states):
        raise DAVError(412, "no list of the If header holds")
    ctx.request[IF_HEADER] = IfHeader(lists, states, paths)


def submitted(ctx: Context) -> frozenset[str]:
    """The lock tokens the request submitted in its If header."""
    found = ctx.request.get(IF_HEADER)
    return found.submitted if found is not None else frozenset()


def expectation(ctx: Context, path: str, *, headers: bool = True) -> Precondition | None:
    """The check a write of ``path`` must pass against what it replaces: the conditional
    headers (``headers``: they concern ``path``, the request URL) and the If header lists
    that name ``path``. None when the request sets no condition on it."""
    request = ctx.request
    use_headers = headers and any(h in request.headers for h in _CONDITIONAL)
    found = request.get(IF_HEADER)
    names = {tag for tag, p in found.paths.items() if p == path} if found is not None else set()
    if not use_headers and not names:
        return None
    fields = request.headers

    def expect(current: Resource | None) -> None:
        if use_headers and conditions.evaluate(fields, current, safe_method=False) is not None:
            raise PreconditionFailed("a conditional header no longer holds")
        if names and found is not None:
            etag = current.etag if current is not None else None
            if not ifheader.holds(found.lists, ifheader.with_etag(found.states, names, etag)):
                raise PreconditionFailed("no list of the If header holds any more")

    return expect


def absent(then: Precondition | None = None) -> Precondition:
    """A check that nothing is at the path (Overwrite: F, MKCOL), then ``then``."""

    def expect(current: Resource | None) -> None:
        if current is not None:
            raise PreconditionFailed("something is there now")
        if then is not None:
            then(current)

    return expect
