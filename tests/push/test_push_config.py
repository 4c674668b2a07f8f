"""The ``[push]`` table: read and checked, each mistake named with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from davserver.config import ConfigError, load

MOUNT = "[[mounts]]\npath='/'\ntype='webdav'\nroot='d'\n"


def test_push_is_off_unless_enabled(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(MOUNT)
    assert not load(path).push.enabled
    path.write_text(
        "[push]\nenabled = true\nallow_hosts = ['127.0.0.1', 'push.lan']\n"
        "contact = 'https://example.org'\nmax_expiry = 259200\n" + MOUNT
    )
    push = load(path).push
    assert push.enabled and push.allow_hosts == ("127.0.0.1", "push.lan")
    assert push.contact == "https://example.org" and push.max_expiry == 259200


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[push]\nmax_expiry = 3600\n", "push.max_expiry", "at least 259200"),
        ("[push]\ncontact = 'admin'\n", "push.contact", "mailto:"),
        ("[push]\ncontact = 'https://example.org/path'\n", "push.contact", "https:"),
        ("[push]\npoll_interval = 0\n", "push.poll_interval", "more than 0"),
        ("[push]\ntimeout = -1\n", "push.timeout", "more than 0"),
        ("[push]\nmerge_window = -1\n", "push.merge_window", "at least 0"),
        ("[push]\nmax_subscriptions = 0\n", "push.max_subscriptions", "at least 1"),
        ("[push]\nallow_hosts = '127.0.0.1'\n", "push.allow_hosts", "list of strings"),
        ("[push]\nenabeld = true\n", "push.enabeld", "unknown key"),
    ],
)  # fmt: skip
def test_bad_push_settings_are_named(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text + MOUNT)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: {key}") and problem in str(err.value)
