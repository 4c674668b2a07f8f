"""Groups of users: the ``[groups]`` table of the configuration, and the directory's.

The one place that answers "which groups is this user in" and "who is in this group", for
the access rules and for whatever else decides by group.
"""

from __future__ import annotations

from collections.abc import Mapping

from .ldap import Directory


class Groups:
    """Group membership from the configuration and, when there is one, the directory
    (a group of the same name in both has the members of both)."""

    def __init__(
        self, table: Mapping[str, tuple[str, ...]], directory: Directory | None = None
    ) -> None:
        self._members = {name: frozenset(users) for name, users in table.items()}
        self._of: dict[str, frozenset[str]] = {}
        for name, users in self._members.items():
            for user in users:
                self._of[user] = self._of.get(user, frozenset()) | {name}
        self._directory = directory

    async def of(self, user: str) -> frozenset[str]:
        """The names of the groups ``user`` is in (``DirectoryUnavailable`` when the
        directory cannot be asked)."""
        listed = self._of.get(user, frozenset())
        if self._directory is None:
            return listed
        return listed | await self._directory.groups_of(user)

    async def members(self, group: str) -> frozenset[str]:
        """The user names of the members of ``group`` (none for a group nobody defines)."""
        listed = self._members.get(group, frozenset())
        if self._directory is None:
            return listed
        return listed | await self._directory.members(group)
