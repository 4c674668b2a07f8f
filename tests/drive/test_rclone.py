"""The real rclone client (Debian's package) against a server process, with ``vendor =
nextcloud``: ``rclone sync`` sets modification times (X-OC-Mtime) and skips unchanged
files by them, ``rclone check`` compares SHA1 checksums (oc:checksums), on both
backends."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import ServerProcess

BACKENDS = {
    "filesystem": 'root = "data"',
    "git": 'backend = "git"\nrepo = "store.git"',
}


def rclone(conf: Path, *args: str) -> str:
    """Run rclone with ``conf``; its output (it logs to stderr)."""
    done = subprocess.run(
        ["rclone", "--config", str(conf), "-vv", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_rclone_sync_and_check_match_by_modtime_and_hash(
    tmp_path: Path, server_process: Callable[..., ServerProcess], backend: str
) -> None:
    assert shutil.which("rclone"), (
        "rclone is not installed (scripts/test installs Debian's package)"
    )
    (tmp_path / "dav.toml").write_text(
        f'[server]\nstate_dir = "state"\nworkers = 1\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\n{BACKENDS[backend]}\n'
    )
    server = server_process("--config", "dav.toml")
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[dav]\ntype = webdav\nurl = {server.url}/\nvendor = nextcloud\n")
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_bytes(b"hello\n")
    (local / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    os.utime(local / "a.txt", (1577934245, 1577934245))

    first = rclone(conf, "sync", str(local), "dav:dir")
    assert "Copied (new)" in first
    listing = rclone(conf, "lsl", "dav:dir")
    assert "2020-01-02 03:04:05" in listing

    again = rclone(conf, "sync", str(local), "dav:dir")
    assert again.count("Unchanged skipping") == 2
    assert "Copied" not in again

    check = rclone(conf, "check", str(local), "dav:dir")
    assert "Using sha1 for hash comparisons" in check
    assert "no common hash" not in check
    assert "0 differences found" in check and "2 matching files" in check

    # A change of the same size and time is caught by the hash, not by the size.
    data = (local / "a.txt").read_bytes()
    (local / "a.txt").write_bytes(data.upper())
    os.utime(local / "a.txt", (1577934245, 1577934245))
    changed = subprocess.run(
        ["rclone", "--config", str(conf), "check", str(local), "dav:dir"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert changed.returncode != 0
    assert "1 differences found" in changed.stderr
