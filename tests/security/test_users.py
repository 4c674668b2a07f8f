"""Accounts: the htpasswd file and ``davserver user add|remove|list``."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from davserver.auth import htpasswd


def user(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # Not from the project root, where `python -m` would import the source tree instead
    # of the installed package.
    return subprocess.run(
        [sys.executable, "-m", "davserver", "user", *args], cwd=tempfile.gettempdir(),
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_add_list_remove(tmp_path: Path) -> None:
    path = tmp_path / "users.htpasswd"
    assert (
        user("--file", str(path), "add", "ann", "--password-stdin", stdin="s3cret\n").returncode
        == 0
    )
    assert user("--file", str(path), "add", "bob", "--password-stdin", stdin="pw\n").returncode == 0
    assert user("--file", str(path), "list").stdout.split() == ["ann", "bob"]
    stored = htpasswd.read(path)
    assert stored["ann"].startswith("$2y$")
    assert htpasswd.check_password("s3cret", stored["ann"])
    assert not htpasswd.check_password("wrong", stored["ann"])
    assert path.stat().st_mode & 0o077 == 0
    assert user("--file", str(path), "remove", "bob").returncode == 0
    assert list(htpasswd.read(path)) == ["ann"]


def test_the_config_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[auth]\nhtpasswd = "users"\n[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "d"\n'
    )
    assert (
        user("--config", str(conf), "add", "ann", "--password-stdin", stdin="x\n").returncode == 0
    )
    assert list(htpasswd.read(tmp_path / "users")) == ["ann"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [(("add", "a:b", "--password-stdin"), "x\n", "not a usable user name"),
     (("add", "ann", "--password-stdin"), "\n", "empty password"),
     (("remove", "nobody"), "", "no user")],
)  # fmt: skip
def test_refusals_change_nothing(
    tmp_path: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    path = tmp_path / "users"
    user("--file", str(path), "add", "ann", "--password-stdin", stdin="pw\n")
    before = path.read_bytes()
    done = user("--file", str(path), *args, stdin=stdin)
    assert done.returncode == 2
    assert message in done.stderr
    assert path.read_bytes() == before


def test_argon2_hashes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"carl:{PasswordHasher().hash('pw')}\n")
    assert htpasswd.check_password("pw", htpasswd.read(path)["carl"])


@pytest.mark.parametrize(
    "line", ["md5:$apr1$abc$def", "plain:secret", "noseparator", "bad name:$2y$x"]
)
def test_weak_or_malformed_entries_are_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "users"
    path.write_text(line + "\n")
    with pytest.raises(htpasswd.HtpasswdError):
        htpasswd.read(path)
