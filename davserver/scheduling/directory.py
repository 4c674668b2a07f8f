"""Who is who: the calendar user addresses of the users of a ``caldav`` tree (RFC 6638
§2.4.1), and the user an address names.

A user's addresses are the mail addresses ``[auth] addresses`` gives them, or
``<user>@<[auth] domain>``, as ``mailto:`` URIs, and the URL of their principal. The
users are the accounts, the mount's default user and those the addresses table names;
an address of anyone else is no local user's (a meeting with them goes out by mail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

from davserver.caldav.store.layout import PRINCIPALS
from davserver.dav.paths import href
from davserver.ical.meeting import address


class Directory:
    """The addresses of the users of the tree at ``prefix``."""

    def __init__(
        self,
        prefix: str,
        addresses: Mapping[str, Sequence[str]],
        domain: str,
        users: Callable[[], Iterable[str]],
    ) -> None:
        self.prefix = prefix
        self.domain = domain
        self._given = {
            user: tuple(f"mailto:{m}" for m in mails) for user, mails in addresses.items()
        }
        self._owners = {address(m): user for user, mails in self._given.items() for m in mails}
        self._users = users

    def known(self, user: str) -> bool:
        """Whether ``user`` is a user of the tree (an account, the default user, or one
        the addresses table names)."""
        return user in self._given or user in set(self._users())

    def mail(self, user: str) -> tuple[str, ...]:
        """``user``'s ``mailto:`` addresses, the preferred one first."""
        return self._given.get(user) or (f"mailto:{user}@{self.domain}",)

    def principal_url(self, user: str) -> str:
        """The URL (path) of ``user``'s principal."""
        return href(self.prefix, f"{PRINCIPALS}/{user}", True)

    def addresses(self, user: str) -> set[str]:
        """Every address of ``user``, in compared form."""
        return {address(m) for m in self.mail(user)} | {self.principal_url(user)}

    def preferred(self, user: str) -> str:
        """The address ``user`` goes by in the messages the server writes for them."""
        return self.mail(user)[0]

    def user_of(self, value: str) -> str | None:
        """The local user an address names (None: nobody here)."""
        found = address(value)
        owner = self._owners.get(found)
        if owner is not None:
            return owner
        if found.startswith("mailto:"):
            local, _, domain = found[7:].rpartition("@")
            if domain == self.domain.lower() and local and local not in self._given:
                return self._known_folded(local)
            return None
        path = unquote(urlsplit(found).path)
        base = f"{self.prefix}/{PRINCIPALS}/"
        if not path.startswith(base):
            return None
        user = path[len(base) :].rstrip("/")
        return user if user and "/" not in user and self.known(user) else None

    def _known_folded(self, local: str) -> str | None:
        """The user whose name is ``local`` (mail addresses are compared folded)."""
        for user in self._users():
            if user.lower() == local and user not in self._given:
                return user
        return None
