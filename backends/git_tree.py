"""Editing a git tree in memory and writing back only the trees on the changed paths.

A path is a list of name segments (bytes). Untouched subtrees stay what they are: an entry
``(mode, id)``. A tree on the path of an edit becomes a :class:`Folder` (a mutable copy of
its entries), and :meth:`TreeEditor.write` stores just those, bottom up. The cost of an
edit thus grows with the depth of the path and the size of the folders on it, never with
the size of the repository.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID, Tree

from .base import Conflict
from .git_objects import ObjectReader

TREE_MODE = stat.S_IFDIR
FILE_MODE = stat.S_IFREG | 0o644

Entry = tuple[int, ObjectID]
"""A tree entry: git mode and object id (hex)."""


@dataclass(slots=True)
class Folder:
    """A tree being edited: name → entry or folder being edited."""

    entries: dict[bytes, Entry | Folder] = field(default_factory=dict)

    def clone(self) -> Folder:
        """A deep copy (entries are immutable; folders are copied)."""
        return Folder(
            {k: v.clone() if isinstance(v, Folder) else v for k, v in self.entries.items()}
        )


Node = Entry | Folder


def is_tree(node: Node | None) -> bool:
    """Whether ``node`` is a tree (edited or not)."""
    return isinstance(node, Folder) or (node is not None and stat.S_ISDIR(node[0]))


def is_file(node: Node | None) -> bool:
    """Whether ``node`` is a regular file."""
    return isinstance(node, tuple) and stat.S_ISREG(node[0])


class TreeEditor:
    """Copy-on-write edits of the tree ``root`` (None for an empty tree)."""

    def __init__(self, reader: ObjectReader, root: ObjectID | None) -> None:
        self._reader = reader
        self.root = Folder(dict(reader.tree(root)) if root else {})

    def get(self, path: list[bytes]) -> Node | None:
        """The node at ``path`` (the root folder for []), or None."""
        node: Node = self.root
        for name in path:
            if isinstance(node, Folder):
                child = node.entries.get(name)
            elif stat.S_ISDIR(node[0]):
                child = self._reader.tree(node[1]).get(name)
            else:
                return None
            if child is None:
                return None
            node = child
        return node

    def names(self, path: list[bytes]) -> list[bytes]:
        """The entry names of the tree at ``path`` ([] when there is none)."""
        node = self.get(path)
        if isinstance(node, Folder):
            return list(node.entries)
        if is_tree(node):
            assert node is not None
            return list(self._reader.tree(node[1]))
        return []

    def folder(self, path: list[bytes]) -> Folder:
        """The tree at ``path`` made editable; Conflict if a segment is not a tree."""
        current = self.root
        for name in path:
            child = current.entries.get(name)
            if isinstance(child, Folder):
                current = child
                continue
            if child is None or not stat.S_ISDIR(child[0]):
                raise Conflict(f"{b'/'.join(path).decode(errors='replace')!r} is not a collection")
            editable = Folder(dict(self._reader.tree(child[1])))
            current.entries[name] = editable
            current = editable
        return current

    def put(self, path: list[bytes], node: Node) -> None:
        """Place ``node`` at ``path``; the parent must be a tree."""
        self.folder(path[:-1]).entries[path[-1]] = node

    def remove(self, path: list[bytes]) -> Node | None:
        """Take the node at ``path`` out and return it (None when there was none)."""
        if self.get(path) is None:
            return None
        return self.folder(path[:-1]).entries.pop(path[-1])

    def write(self, store: DiskObjectStore) -> ObjectID:
        """Store the edited trees; return the id of the root tree."""
        return _write(self.root, store)


def _write(folder: Folder, store: DiskObjectStore) -> ObjectID:
    tree = Tree()
    for name, node in folder.entries.items():
        if isinstance(node, Folder):
            tree.add(name, TREE_MODE, _write(node, store))
        else:
            tree.add(name, node[0], node[1])
    store.add_object(tree)
    return ObjectID(tree.get_id(store.object_format))
