"""config.example.toml loads, and documents every option there is."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from davserver.config import (
    AuthConfig,
    LdapConfig,
    LogConfig,
    MountConfig,
    PushConfig,
    ServerConfig,
    ShareConfig,
    SmtpConfig,
    StateConfig,
    load,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_example_config_loads() -> None:
    config = load(EXAMPLE)
    assert {m.type for m in config.mounts} >= {"webdav", "caldav"}


@pytest.mark.parametrize(
    "name",
    [
        f.name
        for cls in (
            ServerConfig,
            AuthConfig,
            LdapConfig,
            LogConfig,
            PushConfig,
            StateConfig,
            SmtpConfig,
            MountConfig,
            ShareConfig,
        )
        for f in dataclasses.fields(cls)
    ],
)
def test_every_option_is_in_the_example(name: str) -> None:
    text = EXAMPLE.read_text()
    assert re.search(rf"^#? ?{name} = ", text, re.MULTILINE), f"{name} is not documented"


@pytest.mark.parametrize(
    "name",
    [
        f.name
        for cls in (
            ServerConfig,
            AuthConfig,
            LdapConfig,
            LogConfig,
            PushConfig,
            StateConfig,
            SmtpConfig,
            MountConfig,
            ShareConfig,
        )
        for f in dataclasses.fields(cls)
    ],
)
def test_every_option_is_in_the_configuration_doc(name: str) -> None:
    text = (EXAMPLE.parent / "docs" / "configuration.md").read_text()
    assert f"`{name}`" in text, f"{name} is not in docs/configuration.md"
