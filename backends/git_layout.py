"""How a DAV tree lies in a git tree, and the DAV write operations as tree edits.

- A file is a blob, a collection a tree.
- An empty collection holds a placeholder, ``.davkeep`` (git cannot store empty trees).
- Dead properties live beside what they describe, as in the filesystem backend:
  ``<folder>/.davprops/m.<name>`` for a member (``h.<sha256>`` for names over 200
  characters) and ``<folder>/.davprops/self`` for the folder itself, each holding what
  the storage's property codec makes of them.
- Those names, and ``.git`` in any letter case (git refuses it in trees), are reserved:
  never listed and refused in URLs.
- No name longer than 255 bytes is written (git has no limit, but no checkout of the
  branch could hold it): NameTooLong, the filesystem backend's answer.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping

from dulwich.objects import ObjectID

from .base import (
    NAME_MAX,
    AlreadyExists,
    Conflict,
    NameTooLong,
    NotFound,
    PropsCodec,
    check_name,
)
from .git_tree import FILE_MODE, Folder, Node, TreeEditor, is_file, is_tree

PROPS_DIR = ".davprops"
PLACEHOLDER = ".davkeep"
SELF_PROPS = "self"
RESERVED = frozenset(
    {PROPS_DIR, PLACEHOLDER}
    | {"." + "".join(c) for c in itertools.product(*(({ch, ch.upper()}) for ch in "git"))}
)
_MAX_SIDE_NAME = 200


def segments(path: str) -> list[bytes]:
    """A storage path as tree path segments."""
    return [s.encode() for s in path.split("/")] if path else []


def member_props_name(name: bytes) -> bytes:
    """The name of a member's property file inside its folder's ``.davprops``."""
    if len(name) > _MAX_SIDE_NAME:
        return b"h." + hashlib.sha256(name).hexdigest().encode()
    return b"m." + name


def props_path(path: list[bytes], is_collection: bool) -> list[bytes]:
    """Where the dead properties of the resource at ``path`` are kept."""
    if is_collection:
        return [*path, PROPS_DIR.encode(), SELF_PROPS.encode()]
    return [*path[:-1], PROPS_DIR.encode(), member_props_name(path[-1])]


def _text(path: list[bytes]) -> str:
    return b"/".join(path).decode(errors="replace")


class DavTree:
    """The DAV write operations on a :class:`TreeEditor`.

    ``store_bytes`` stores a small blob and returns its id; ``codec`` makes property
    files. Each operation raises the storage error the filesystem backend would raise
    in the same situation.
    """

    def __init__(
        self, editor: TreeEditor, store_bytes: Callable[[bytes], ObjectID], codec: PropsCodec
    ) -> None:
        self.editor = editor
        self._store_bytes = store_bytes
        self._codec = codec

    def _parent_folder(self, path: list[bytes]) -> None:
        """Refuse a path that cannot get a new entry: the root, a name too long, a parent
        that is not a collection."""
        if not path:
            raise AlreadyExists("the root exists")
        check_name(_text(path))
        if any(len(name) > NAME_MAX for name in path):
            raise NameTooLong(f"a name in {_text(path)!r} is over {NAME_MAX} bytes")
        if not is_tree(self.editor.get(path[:-1])):
            raise Conflict(f"the parent of {_text(path)!r} is not a collection")

    def check_writable(self, path: list[bytes]) -> None:
        """Refuse early what :meth:`write` would refuse, before a body is read."""
        self._parent_folder(path)
        if is_tree(self.editor.get(path)):
            raise AlreadyExists(f"{_text(path)!r} is a collection")

    def write(self, path: list[bytes], blob: ObjectID) -> bool:
        """Make ``path`` a file with the blob ``blob``; return whether it is new."""
        self.check_writable(path)
        old = self.editor.get(path)
        created = not is_file(old)
        mode = old[0] if isinstance(old, tuple) and not created else FILE_MODE
        self.editor.put(path, (mode, blob))
        if created:
            self._drop(props_path(path, False))
        return created

    def mkcol(self, path: list[bytes]) -> None:
        """Create an empty collection."""
        self._parent_folder(path)
        if self.editor.get(path) is not None:
            raise AlreadyExists(_text(path))
        self.editor.put(path, Folder({PLACEHOLDER.encode(): (FILE_MODE, self._store_bytes(b""))}))
        self._drop(props_path(path, False))

    def _existing(self, path: list[bytes]) -> Node:
        node = self.editor.get(path)
        if not path or not (is_file(node) or is_tree(node)):
            raise NotFound(_text(path))
        assert node is not None
        return node

    def delete(self, path: list[bytes]) -> None:
        """Delete a file, or a collection with all its members."""
        node = self._existing(path)
        self.editor.remove(path)
        if not is_tree(node):
            self._drop(props_path(path, False))
        self._keep(path[:-1])

    def copy(self, src: list[bytes], dst: list[bytes], *, recursive: bool) -> None:
        """Copy ``src`` with its dead properties (a collection with or without members) to
        ``dst``: not existing, or a file that a copied file replaces."""
        node = self._existing(src)
        self._parent_folder(dst)
        there = self.editor.get(dst)
        if there is not None and (is_tree(there) or is_tree(node)):
            raise AlreadyExists(_text(dst))
        if is_tree(node) and not recursive:
            shallow = Folder({PLACEHOLDER.encode(): (FILE_MODE, self._store_bytes(b""))})
            self.editor.put(dst, shallow)
            own = self.editor.get(props_path(src, True))
            if own is not None:
                self._ensure_folder(props_path(dst, True)[:-1])
                self.editor.put(props_path(dst, True), own)
            return
        self.editor.put(dst, node.clone() if isinstance(node, Folder) else node)
        if not is_tree(node):
            self._carry_member_props(src, dst)

    def move(self, src: list[bytes], dst: list[bytes]) -> None:
        """Move ``src`` with its members and dead properties to ``dst``: not existing, or a
        file that a moved file replaces."""
        node = self._existing(src)
        self._parent_folder(dst)
        there = self.editor.get(dst)
        if there is not None and (is_tree(there) or is_tree(node)):
            raise AlreadyExists(_text(dst))
        self.editor.put(dst, node)
        self.editor.remove(src)
        if not is_tree(node):
            self._carry_member_props(src, dst)
            self._drop(props_path(src, False))
        self._keep(src[:-1])

    def set_props(self, path: list[bytes], props: Mapping[str, bytes]) -> None:
        """Replace all dead properties of ``path``."""
        node = self.editor.get(path)
        if path and not (is_file(node) or is_tree(node)):
            raise NotFound(_text(path))
        side = props_path(path, is_tree(node))
        if props:
            self._ensure_folder(side[:-1])
            self.editor.put(side, (FILE_MODE, self._store_bytes(self._codec.encode(props))))
        else:
            self._drop(side)

    def _ensure_folder(self, path: list[bytes]) -> None:
        if not is_tree(self.editor.get(path)):
            self.editor.put(path, Folder())

    def _carry_member_props(self, src: list[bytes], dst: list[bytes]) -> None:
        side = self.editor.get(props_path(src, False))
        target = props_path(dst, False)
        if side is None:
            self._drop(target)
            return
        self._ensure_folder(target[:-1])
        self.editor.put(target, side)

    def _drop(self, side: list[bytes]) -> None:
        """Remove a property file, and its ``.davprops`` folder once empty."""
        if self.editor.remove(side) is None:
            return
        if not self.editor.names(side[:-1]):
            self.editor.remove(side[:-1])
            self._keep(side[:-2])

    def _keep(self, folder: list[bytes]) -> None:
        """Give a collection left empty its placeholder (the root needs none)."""
        if folder and not self.editor.names(folder):
            self.editor.put([*folder, PLACEHOLDER.encode()], (FILE_MODE, self._store_bytes(b"")))
