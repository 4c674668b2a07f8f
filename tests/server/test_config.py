"""The TOML configuration: defaults, overrides, and errors naming file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from davserver.config import ConfigError, embedded_default, load, override

GOOD = """
[server]
host = "127.0.0.1"
port = 9999
state_dir = "st"

[[mounts]]
path = "/files"
type = "webdav"
backend = "filesystem"
root = "data/files"

[[mounts]]
path = "/"
type = "webdav"
root = "data/top"
depth_infinity = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.toml"
    path.write_text(text)
    return path


def test_good_file_is_read_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    assert config.server.port == 9999
    assert config.server.state_dir == tmp_path / "st"
    files, top = config.mounts
    assert (files.prefix, files.root, files.depth_infinity) == (
        "/files",
        tmp_path / "data/files",
        False,
    )
    assert (top.prefix, top.root, top.depth_infinity) == ("", tmp_path / "data/top", True)


def test_embedded_default_serves_data_and_calendars(tmp_path: Path) -> None:
    config = embedded_default(tmp_path)
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    files, calendars = config.mounts
    assert (files.path, files.type, files.backend, files.root) == (
        "/",
        "webdav",
        "filesystem",
        tmp_path / "data",
    )
    assert (calendars.path, calendars.type, calendars.root) == (
        "/caldav",
        "caldav",
        tmp_path / "calendars",
    )


def test_overrides_replace_host_port_and_first_filesystem_root(tmp_path: Path) -> None:
    config = override(load(write(tmp_path, GOOD)), host="::1", port=1234, root=tmp_path / "x")
    assert (config.server.host, config.server.port) == ("::1", 1234)
    assert config.mounts[0].root == tmp_path / "x"
    assert config.mounts[1].root == tmp_path / "data/top"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[server]\nport = 'x'\n[[mounts]]\npath='/'\ntype='webdav'\nroot='d'", "server.port", "int"),
        ("[server]\nport = 70000\n[[mounts]]\npath='/'\ntype='webdav'\nroot='d'", "server.port", "not a TCP port"),
        ("[server]\nprot = 1\n[[mounts]]\npath='/'\ntype='webdav'\nroot='d'", "server.prot", "unknown key"),
        ("[[mounts]]\npath='/'\ntype='webdav'\nroot='d'\nbackend='s3'", "mounts[0].backend", "'s3'"),
        ("[[mounts]]\npath='/'\ntype='ftp'\nroot='d'", "mounts[0].type", "'ftp'"),
        ("[[mounts]]\npath='/'\ntype='webdav'", "mounts[0].root", "missing"),
        ("[[mounts]]\ntype='webdav'\nroot='d'", "mounts[0].path", "missing"),
        ("[[mounts]]\npath='files'\ntype='webdav'\nroot='d'", "mounts[0].path", "must start with /"),
        ("[[mounts]]\npath='/a'\ntype='webdav'\nroot='d'\n[[mounts]]\npath='/a/'\ntype='webdav'\nroot='e'",
         "mounts[1].path", "mounted twice"),
        ("[server]\nport = 1\n", "mounts", "at least one"),
        ("[srever]\n", "srever", "unknown table"),
        ("[state]\nurl = 'mysql://x/y'\n[[mounts]]\npath='/'\ntype='webdav'\nroot='d'", "state.url", "PostgreSQL URL"),
        ("[state]\npool_size = 0\n[[mounts]]\npath='/'\ntype='webdav'\nroot='d'", "state.pool_size", "at least 2"),
        ("[state]\nurl = 5\n[[mounts]]\npath='/'\ntype='webdav'\nroot='d'", "state.url", "str"),
        ("[server\n", "", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}")
    assert problem in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.toml")


def test_the_state_is_sqlite_unless_a_database_is_named(tmp_path: Path) -> None:
    mounts = "[[mounts]]\npath='/'\ntype='webdav'\nroot='d'\n"
    assert load(write(tmp_path, mounts)).state.url is None
    url = "postgresql://davserver@db.example.org/davserver?sslmode=verify-full"
    config = load(write(tmp_path, f"[state]\nurl = '{url}'\npool_size = 8\n{mounts}"))
    assert (config.state.url, config.state.pool_size) == (url, 8)
