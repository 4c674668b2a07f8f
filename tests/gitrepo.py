"""Helpers for the git backend tests: a server on a repository, and the git binary to check
what it committed (the server itself never runs git)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig

IDENTITY = "davserver <davserver@localhost>"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Pusher",
    "GIT_AUTHOR_EMAIL": "pusher@example.com",
    "GIT_COMMITTER_NAME": "Pusher",
    "GIT_COMMITTER_EMAIL": "pusher@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in ``cwd`` (a repository or a work tree); return its stdout."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd, capture_output=True, text=True, check=False,
        env={**os.environ, **GIT_ENV, **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def git_bytes(cwd: Path, *args: str) -> bytes:
    """Run git and return its raw stdout."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, env={**os.environ, **GIT_ENV}
    )
    return done.stdout


def commits(repo: Path, branch: str = "main") -> list[str]:
    """The commit ids on ``branch``, newest first ([] for an unborn branch, or a repository
    that does not exist yet)."""
    if not repo.exists():
        return []
    done = subprocess.run(
        ["git", "rev-list", branch], cwd=repo, capture_output=True, text=True, check=False
    )
    return done.stdout.split() if done.returncode == 0 else []


def messages(repo: Path, branch: str = "main") -> list[str]:
    """The subjects of the commits on ``branch``, oldest first."""
    if not commits(repo, branch):
        return []
    return git(repo, "log", "--reverse", "--format=%s", branch).splitlines()


def files(repo: Path, rev: str = "main") -> dict[str, bytes]:
    """Every file in the tree of ``rev`` with its bytes."""
    names = git(repo, "ls-tree", "-r", "-z", "--name-only", rev).split("\0")
    return {n: git_bytes(repo, "cat-file", "blob", f"{rev}:{n}") for n in names if n}


def assert_linear_and_clean(repo: Path, branch: str = "main") -> None:
    """No merge commits on the branch and `git fsck --strict` finds nothing wrong."""
    assert git(repo, "rev-list", "--min-parents=2", branch) == ""
    git(repo, "fsck", "--strict", "--no-dangling")


def git_config(repo: Path, tmp_path: Path, **mount: Any) -> Config:
    """A one-mount configuration: WebDAV at / over the git repository ``repo``."""
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(MountConfig(path="/", type="webdav", backend="git", repo=repo, **mount),),
    )


def git_app(repo: Path, tmp_path: Path, **mount: Any) -> Any:
    """The application serving ``repo``."""
    return create_app(git_config(repo, tmp_path, **mount))
