"""What a request may do, as WebDAV ACL (RFC 3744) lets a client read it: the properties
``current-user-privilege-set``, ``supported-privilege-set`` and a read-only ``acl``, on
every resource of a DAV tree.

Nothing here decides anything: the privileges are worked out from the rules that do
decide (the tree's access levels for anonymous and authenticated requests, the owner-only
rule of its layout, the places no request may change), so that a client that asks sees
what the server will let it do. ACLs cannot be changed (the tree answers ACL with 405).
"""

from __future__ import annotations

from collections.abc import Callable

from davserver.backends.base import Resource
from davserver.state.shares import NO_GRANTS, READ_WRITE, Grants

from .context import DavSettings
from .paths import href
from .props import LiveRenderer, PropRenderer

CURRENT = "{DAV:}current-user-privilege-set"
SUPPORTED = "{DAV:}supported-privilege-set"
ACL = "{DAV:}acl"
NAMES = frozenset({CURRENT, SUPPORTED, ACL})
"""The properties this module renders (protected: no PROPPATCH sets them)."""

READ = ("read", "read-acl", "read-current-user-privilege-set")
WRITE = ("write", "write-properties", "write-content")
MEMBERS = ("bind", "unbind")
"""Of collections only: adding and removing members."""
Adjust = Callable[[str, tuple[str, ...]], tuple[str, ...]]
"""What the tree's features make of the privileges granted on a path (a privilege of
another namespace than DAV: is named with its prefix, ``C:schedule-send``)."""


def _supported(locking: bool) -> str:
    def leaf(name: str, text: str, inner: str = "", abstract: bool = False) -> str:
        mark = "<D:abstract/>" if abstract else ""
        return (
            f"<D:supported-privilege><D:privilege><D:{name}/></D:privilege>{mark}"
            f'<D:description xml:lang="en">{text}</D:description>{inner}'
            "</D:supported-privilege>"
        )

    write = "".join(
        leaf(n, t)
        for n, t in (
            ("write-properties", "Change properties"),
            ("write-content", "Change the content"),
            ("bind", "Add members"),
            ("unbind", "Remove members"),
        )
    )
    inner = (
        leaf("read", "Read")
        + leaf("write", "Write", write)
        + (leaf("unlock", "Unlock") if locking else "")
        + leaf("read-acl", "Read the access control list")
        + leaf("read-current-user-privilege-set", "Read one's own privileges")
    )
    return f"<D:supported-privilege-set>{leaf('all', 'Everything', inner, True)}" + (
        "</D:supported-privilege-set>"
    )


def privileges(level: str, writable: bool, collection: bool, locking: bool) -> tuple[str, ...]:
    """The privileges of an access ``level`` (off, read-only, read-write) on a resource
    (``writable``: a place some request may change at all)."""
    if level == "off":
        return ()
    if level != "read-write" or not writable:
        return READ
    return READ + WRITE + (MEMBERS if collection else ()) + (("unlock",) if locking else ())


def _privilege(name: str) -> str:
    element = name if ":" in name else f"D:{name}"
    return f"<D:privilege><{element}/></D:privilege>"


def _privilege_set(tag: str, granted: tuple[str, ...]) -> str:
    inner = "".join(_privilege(p) for p in granted)
    return f"<{tag}>{inner}</{tag}>"


def _ace(principal: str, granted: tuple[str, ...]) -> str:
    grant = "".join(_privilege(p) for p in granted)
    return (
        f"<D:ace><D:principal>{principal}</D:principal><D:grant>{grant}</D:grant>"
        "<D:protected/></D:ace>"
    )


class Rules:
    """The tree's rules, as this module needs them: its access levels, whether it is
    owner-only, and its layout's answers (whose a path is, which places no request
    changes, where a user's principal is)."""

    def __init__(
        self,
        settings: DavSettings,
        owner: Callable[[str], str | None],
        read_only: Callable[[str], bool],
        principal_path: Callable[[str], str | None],
        anonymous: str | None,
        locking: bool,
        adjust: Adjust | None = None,
    ) -> None:
        self.settings = settings
        self.owner = owner
        self.read_only = read_only
        self.principal_path = principal_path
        self.anonymous = anonymous
        """Whose tree anonymous requests may enter (a CalDAV tree's default user)."""
        self.locking = locking
        self.adjust = adjust or (lambda path, granted: granted)

    def writable(self, path: str) -> bool:
        """Whether any request may change the resource at ``path`` (shared places of an
        owner-only tree, and places the layout keeps read-only, are never changed)."""
        if self.read_only(path):
            return False
        return not (self.settings.owner_only and self.owner(path) is None)

    def granted(
        self,
        path: str,
        collection: bool,
        user: str | None,
        principal: str | None,
        level: str | None,
        grants: Grants = NO_GRANTS,
    ) -> tuple[str, ...]:
        """The privileges of a request of ``user`` (None: anonymous) acting as
        ``principal`` on the resource at ``path``, at the access ``level`` the rules gave
        it (its groups' included; None: the tree's level for anonymous or authenticated
        requests); in another user's tree, those of the share ``grants`` hold there (the
        shared collection itself: reading, and adding and removing members)."""
        settings = self.settings
        if settings.owner_only:
            owner = self.owner(path)
            if owner is not None and owner != principal:
                root = grants.root(path)
                if root is None:
                    return ()
                shared = grants.roots[root]
                if root == path:
                    return READ + (MEMBERS if shared == READ_WRITE else ())
                return privileges(shared, self.writable(path), collection, self.locking)
        if level is None:
            level = settings.authenticated if user is not None else settings.anonymous
        granted = privileges(level, self.writable(path), collection, self.locking)
        return self.adjust(path, granted) if granted else granted

    def acl(self, prefix: str, path: str, collection: bool) -> str:
        """The ACEs that grant what the rules grant on ``path``: to its owner (an
        owner-only tree), or to authenticated and anonymous requests."""
        settings = self.settings
        writable = self.writable(path)
        owner = self.owner(path) if settings.owner_only else None
        who = "<D:authenticated/>"
        anonymous = settings.anonymous
        if owner is not None:
            where = self.principal_path(owner)
            if where is not None:
                who = f"<D:href>{href(prefix, where, True)}</D:href>"
            if owner != self.anonymous:
                anonymous = "off"
        aces = []
        for principal, level in ((who, settings.authenticated),
                                 ("<D:unauthenticated/>", anonymous)):  # fmt: skip
            granted = privileges(level, writable, collection, self.locking)
            if granted:
                aces.append(_ace(principal, self.adjust(path, granted)))
        return f"<D:acl>{''.join(aces)}</D:acl>"

    def properties(
        self, user: str | None, principal: str | None, level: str | None
    ) -> dict[str, LiveRenderer]:
        """The renderers of the three properties for requests of ``user`` at ``level``
        (see :meth:`granted`)."""
        supported = _supported(self.locking)

        def current(r: PropRenderer, res: Resource) -> str:
            granted = self.granted(res.path, res.is_collection, user, principal, level, r.grants)
            return _privilege_set("D:current-user-privilege-set", granted)

        return {
            CURRENT: current,
            SUPPORTED: lambda r, res: supported,
            ACL: lambda r, res: self.acl(r.prefix, res.path, res.is_collection),
        }


def read_only_properties(accounts: bool) -> dict[str, LiveRenderer]:
    """The three properties of a place nobody changes (the server root no mount holds),
    which anyone may read, or (``accounts``) those who logged in."""
    supported = _supported(False)
    current = _privilege_set("D:current-user-privilege-set", READ)
    who = "<D:authenticated/>" if accounts else "<D:all/>"
    acl = f"<D:acl>{_ace(who, READ)}</D:acl>"
    return {
        CURRENT: lambda r, res: current,
        SUPPORTED: lambda r, res: supported,
        ACL: lambda r, res: acl,
    }
