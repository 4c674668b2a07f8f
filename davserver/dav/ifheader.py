"""The WebDAV ``If`` header (RFC 4918 §10.4): parsing and evaluation.

The header is a series of lists, each optionally tagged with the resource it applies to
(untagged lists apply to the request URL). A list holds conditions that must all hold:
a state token (a lock token, or an unknown URI such as ``DAV:no-lock`` that never
matches) or an entity tag in brackets, each possibly negated with ``Not``. The header is
true when at least one list is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from .errors import DAVError


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a list: a state token or an entity tag, maybe negated."""

    negated: bool
    token: str | None = None
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class IfList:
    """Conditions that must all hold, for the tagged resource (None: the request URL)."""

    resource: str | None
    conditions: tuple[Condition, ...]


# One item inside a list: a closing parenthesis, Not, a state token or an entity tag.
_ITEM = re.compile(
    r"""\s*(?:
        (?P<close>\))
      | (?P<not>Not\b)
      | (?P<token><[^>]*>)
      | (?P<etag>\[[^\]]*\])
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def parse(value: str) -> list[IfList]:
    """The lists of an If header; 400 when it does not follow the grammar."""
    lists: list[IfList] = []
    pos, n = 0, len(value)
    resource: str | None = None
    tagged: bool | None = None
    while value[pos:].strip():
        rest = value[pos:].lstrip()
        pos = n - len(rest)
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                raise DAVError(400, "If header: unterminated resource tag")
            if tagged is False:
                raise DAVError(400, "If header mixes tagged and untagged lists")
            tagged = True
            resource = rest[1:end]
            pos += end + 1
            continue
        if not rest.startswith("("):
            raise DAVError(400, f"If header: unexpected {rest[:20]!r}")
        if tagged is None:
            tagged = False
        conditions, pos = _parse_list(value, pos + 1)
        lists.append(IfList(resource if tagged else None, tuple(conditions)))
    if not lists:
        raise DAVError(400, "If header without any list")
    return lists


def _parse_list(value: str, pos: int) -> tuple[list[Condition], int]:
    conditions: list[Condition] = []
    negated = False
    while True:
        m = _ITEM.match(value, pos)
        if m is None:
            raise DAVError(400, "If header: malformed list")
        pos = m.end()
        if m["close"]:
            if negated or not conditions:
                raise DAVError(400, "If header: empty list or dangling Not")
            return conditions, pos
        if m["not"]:
            if negated:
                raise DAVError(400, "If header: Not Not")
            negated = True
        elif m["token"]:
            conditions.append(Condition(negated, token=m["token"][1:-1].strip()))
            negated = False
        else:
            conditions.append(Condition(negated, etag=m["etag"][1:-1].strip()))
            negated = False


def submitted_tokens(lists: list[IfList]) -> set[str]:
    """The lock tokens the client submits with the header (those it does not negate)."""
    return {c.token for lst in lists for c in lst.conditions if c.token and not c.negated}


@dataclass(frozen=True, slots=True)
class ResourceState:
    """What conditions are tested against: the current ETag (None when unmapped) and the
    tokens of the locks that cover the resource."""

    etag: str | None
    lock_tokens: frozenset[str]


StateLookup = Callable[[str | None], Awaitable[ResourceState | None]]
States = Mapping[str | None, ResourceState | None]
"""The state of each resource the lists name (None for the request URL); a state of None
means no resource here (or none the requester may read): no list about it holds."""


def _strip_weak(etag: str) -> str:
    return etag[2:] if etag.startswith("W/") else etag


async def gather(
    lists: list[IfList], state_of: StateLookup
) -> dict[str | None, ResourceState | None]:
    """The states the lists need, each looked up once through ``state_of``."""
    states: dict[str | None, ResourceState | None] = {}
    for lst in lists:
        if lst.resource not in states:
            states[lst.resource] = await state_of(lst.resource)
    return states


def holds(lists: list[IfList], states: States) -> bool:
    """Whether at least one list holds for these states."""
    for lst in lists:
        state = states.get(lst.resource)
        if state is not None and all(_holds(c, state) for c in lst.conditions):
            return True
    return False


def with_etag(states: States, resources: set[str | None], etag: str | None) -> States:
    """``states`` with the ETag of the named resources replaced (what a write sees when it
    checks the header again against the resource it is about to replace)."""
    changed = dict(states)
    for name in resources:
        state = changed.get(name)
        if state is not None:
            changed[name] = replace(state, etag=etag)
    return changed


def _holds(c: Condition, state: ResourceState) -> bool:
    if c.token is not None:
        result = c.token in state.lock_tokens
    else:
        assert c.etag is not None
        result = state.etag is not None and _strip_weak(c.etag) == _strip_weak(state.etag)
    return result != c.negated
