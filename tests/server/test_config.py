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
        ("[[mounts]]\npath='/'\ntype='webdav'\nbackend='git'\nrepo='r'\ngc_pack_limit=0",
         "mounts[0].gc_pack_limit", "at least 1"),
        ("[[mounts]]\npath='/'\ntype='static'\nroot='d'\ngc_pack_limit=4",
         "mounts[0].gc_pack_limit", "static"),
        ("[[mounts]]\npath='/'\ntype='webdav'\nroot='d'\nread_cache=-1",
         "mounts[0].read_cache", "at least 0"),
        ("[[mounts]]\npath='/'\ntype='static'\nroot='d'\nread_cache=0",
         "mounts[0].read_cache", "static"),
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


CAL = "[[mounts]]\npath='/caldav'\ntype='caldav'\nroot='c'\n"


def test_addresses_domain_and_smtp_are_read(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    text = (
        "[auth]\ndomain = 'example.org'\naddresses = { ann = ['ann@example.org', 'a@x.org'] }\n"
        "[smtp]\nhost = 'smtp.example.org'\nport = 465\ntls = 'tls'\nusername = 'cal'\n"
        "password_file = 'pw'\nsender = 'cal@example.org'\ntimeout = 3\n" + CAL
    )
    config = load(write(tmp_path, text))
    assert config.auth.domain == "example.org"
    assert config.auth.addresses == {"ann": ("ann@example.org", "a@x.org")}
    assert config.smtp.password_file == tmp_path / "pw"
    assert (config.smtp.host, config.smtp.port, config.smtp.tls) == ("smtp.example.org", 465, "tls")
    assert config.mounts[0].scheduling is True


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[auth]\naddresses = { ann = 'ann@x.org' }\n", "auth.addresses", "lists of strings"),
        ("[auth]\naddresses = { ann = ['mailto:ann@x.org'] }\n", "auth.addresses.ann", "not a mail address"),
        ("[auth]\naddresses = { ann = ['ann'] }\n", "auth.addresses.ann", "not a mail address"),
        ("[auth]\naddresses = { '.x' = ['x@x.org'] }\n", "auth.addresses..x", "user name"),
        ("[auth]\naddresses = { ann = ['a@x.org'], bob = ['A@x.org'] }\n", "auth.addresses.bob",
         "ann's address already"),
        ("[auth]\ndomain = 'not a domain'\n", "auth.domain", "not a domain"),
        ("[smtp]\ntls = 'ssl'\n", "smtp.tls", "'ssl'"),
        ("[smtp]\nport = 0\n", "smtp.port", "not a TCP port"),
        ("[smtp]\nhost = 'smtp.x.org'\n", "smtp.sender", "must be the mail address"),
        ("[smtp]\npassword_file = 'pw'\n", "smtp.password_file", "needs a username"),
        ("[smtp]\nusername = 'u'\npassword_file = 'nope'\n", "smtp.password_file", "not a file"),
        ("[smtp]\ntimeout = 0\n", "smtp.timeout", "more than 0"),
        ("[smpt]\n", "smpt", "unknown table"),
    ],
)  # fmt: skip
def test_bad_scheduling_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text + CAL)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}"), message
    assert problem in message


def test_scheduling_is_a_key_of_caldav_mounts_only(tmp_path: Path) -> None:
    path = write(tmp_path, "[[mounts]]\npath='/'\ntype='webdav'\nroot='d'\nscheduling=false\n")
    with pytest.raises(ConfigError, match=r"mounts\[0\]\.scheduling: not an option of webdav"):
        load(path)
