"""The test helpers themselves: a snapshot taken while the server removes temporary files
(as it does after every write) leaves them out instead of failing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest
from helpers import snapshot

REAL_WALK = os.walk


def walk_removing_temporaries(top: str, *args: object, **kwargs: object) -> Iterator[tuple]:
    """os.walk, except that each ``.davtmp-*`` entry is removed right after its folder was
    listed: the race of a server finishing a write while a test takes a snapshot."""
    for dirpath, dirnames, filenames in REAL_WALK(top, *args, **kwargs):
        for name in dirnames + filenames:
            if name.startswith(".davtmp-"):
                path = os.path.join(dirpath, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        yield dirpath, dirnames, filenames


def test_entries_removed_during_the_walk_are_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dir" / ".davtmp-copy" / "inner").mkdir(parents=True)
    (tmp_path / "dir" / ".davtmp-copy" / "inner" / "f").write_bytes(b"copied")
    (tmp_path / "dir" / "kept.txt").write_bytes(b"kept")
    (tmp_path / ".davtmp-1-1").write_bytes(b"upload")
    (tmp_path / ".davtmp-link").symlink_to("dir/kept.txt")
    (tmp_path / "link").symlink_to("dir/kept.txt")
    monkeypatch.setattr(helpers.os, "walk", walk_removing_temporaries)
    assert snapshot(tmp_path) == {
        "dir": None,
        "dir/kept.txt": b"kept",
        "link": b"->dir/kept.txt",
    }
