"""What a DAV handler is given: the request, its storage path, and the tree that serves it.

A handler never sees a mount. It gets a :class:`Context`, whose :class:`Tree` (a mount
implements it) offers the storage, the settings, the locks, the composed features and the
URL rules of the tree; features reach what they keep per tree (the calendar store, say)
through typed :class:`ServiceKey` entries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from aiohttp import web

from davserver.backends.base import Resource, Storage
from davserver.locks.manager import LockManager
from davserver.state.shares import NO_GRANTS, READ_WRITE, Grants

from .errors import DAVError
from .identity import ANONYMOUS

if TYPE_CHECKING:
    from .features import FeatureSet
    from .props import PropRenderer, PropRequest

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DavSettings:
    """Per-mount protocol settings (see docs/configuration.md)."""

    depth_infinity: bool = False
    max_xml_size: int = 1 << 20
    inline_limit: int = 64 << 10
    lock_timeout: int = 3600
    lock_timeout_max: int = 86400
    owner_only: bool = False
    """Each user's tree (``/<mount>/<user>/``) is theirs alone."""
    anonymous: str = "read-write"
    authenticated: str = "read-write"
    """The access levels (davserver/access.py) of anonymous and authenticated requests,
    enforced before the tree is reached; the tree reports them (dav/acl.py)."""
    max_props: int = 1000
    """The most properties one PROPFIND or report may name."""
    default_charset: str = "utf-8"
    """The charset named in the Content-Type of text files (davserver.dav.charset)."""


class ServiceKey(Generic[_T]):
    """A typed name for something a feature keeps per tree (the calendar store...)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<ServiceKey {self.name}>"


class Tree(Protocol):
    """A DAV tree as handlers see it (implemented by the DAV mount)."""

    prefix: str
    storage: Storage
    settings: DavSettings
    locks: LockManager
    features: FeatureSet
    services: Mapping[ServiceKey[Any], Any]

    def storage_path(self, raw_path: str) -> str:
        """The storage path of a raw URL path inside the tree (400/403 when it cannot be)."""

    def contains(self, raw_path: str) -> bool:
        """Whether a raw URL path lies inside the tree."""


class Context:
    """One request to a DAV tree: what every handler is called with."""

    __slots__ = ("grants", "path", "principal", "request", "tree", "user")

    def __init__(
        self,
        request: web.Request,
        path: str,
        tree: Tree,
        user: str | None,
        principal: str | None,
        grants: Grants = NO_GRANTS,
    ) -> None:
        self.request = request
        self.path = path
        """The storage path the request URL names."""
        self.tree = tree
        self.user = user
        """The authenticated user (None: anonymous)."""
        self.principal = principal
        """Whose tree the request may enter and whose principal it sees (the
        authenticated user; a CalDAV tree's default user for anonymous requests)."""
        self.grants = grants
        """The collections of other users' trees shared with the user (owner-only trees)."""

    # -- the tree's parts -----------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The URL prefix of the tree."""
        return self.tree.prefix

    @property
    def storage(self) -> Storage:
        """The tree's storage."""
        return self.tree.storage

    @property
    def settings(self) -> DavSettings:
        """The tree's protocol settings."""
        return self.tree.settings

    @property
    def locks(self) -> LockManager:
        """The server's lock manager."""
        return self.tree.locks

    @property
    def features(self) -> FeatureSet:
        """The features the tree is made of."""
        return self.tree.features

    def service(self, key: ServiceKey[_T]) -> _T:
        """What a feature keeps for this tree under ``key``."""
        return cast(_T, self.tree.services[key])

    @property
    def author(self) -> str:
        """Whom a change is recorded as and a lock belongs to."""
        return self.user or ANONYMOUS

    # -- URLs and who may see what ------------------------------------------------------

    def storage_path(self, raw_path: str) -> str:
        """The storage path of a raw URL path inside the tree."""
        return self.tree.storage_path(raw_path)

    def contains(self, raw_path: str) -> bool:
        """Whether a raw URL path lies inside the tree."""
        return self.tree.contains(raw_path)

    def owner(self, path: str) -> str | None:
        """Whose tree ``path`` lies in when trees are owner-only (None: a shared place)."""
        return self.features.owner(path) if self.settings.owner_only else None

    def may_enter(self, path: str) -> bool:
        """Whether the request may see ``path`` (for members listed and hrefs named by a
        request whose own path was allowed): its own tree, a shared place, or a
        collection shared with the user."""
        owner = self.owner(path)
        return owner is None or owner == self.principal or self.grants.root(path) is not None

    def shared_root(self, path: str) -> bool:
        """Whether ``path`` is a collection of another user's tree shared with the user
        (the root of a share: what a sharee may turn down, and what is listed in their
        home)."""
        owner = self.owner(path)
        return owner is not None and owner != self.principal and path in self.grants.roots

    def check_owner(self, path: str, *, write: bool, changes: bool | None = None) -> None:
        """Refuse (403) a path in another user's tree (but what is shared with the user,
        at the level of the share), and a change to a shared place, in an owner-only tree.
        ``write``: the request may create or change something at ``path``; ``changes``
        (default: ``write``): it does change something there (MKCOL may create; COPY
        only reads its source)."""
        if not self.settings.owner_only:
            return
        owner = self.owner(path)
        if owner is None:
            if write:
                raise DAVError(403, "the shared part of an owner-only tree cannot be changed")
            return
        if owner == self.principal:
            return
        root = self.grants.root(path)
        if root is None:
            raise DAVError(403, f"{path!r} belongs to another user")
        if changes if changes is not None else write:
            if self.grants.roots[root] != READ_WRITE:
                raise DAVError(403, f"{root!r} is shared read-only")
            if path == root:
                raise DAVError(403, f"{root!r} itself is its owner's: its members may change")

    # -- properties -------------------------------------------------------------------------

    def renderer(self, prop_request: PropRequest) -> PropRenderer:
        """The renderer of the tree's properties for this request."""
        return self.features.renderer(self, prop_request)

    async def annotate(self, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Work out, before rendering, property values that need I/O."""
        await self.features.annotate(self, renderer, batch)

    async def members(self, renderer: PropRenderer, res: Resource) -> AsyncIterator[str] | None:
        """The responses of the members of ``res`` as a feature renders them from its
        index (None: list and render them)."""
        return await self.features.members(self, renderer, res)


CURRENT = ContextVar[Context | None]("davserver.dav.context", default=None)
"""The request a DAV tree is answering in this task: change subscribers, which run within
the request that made a change, read who made it and what it asked (Push-Dont-Notify)."""
