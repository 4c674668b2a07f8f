"""The configuration: a TOML file (or the embedded default), checked before anything listens.

Every mistake is reported as ``FILE: KEY: what is wrong``. Relative paths in a file are
taken relative to that file's folder; in the embedded default, relative to the working
directory.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EMBEDDED = "<embedded default>"
MOUNT_TYPES = ("webdav",)
BACKENDS = ("filesystem",)
_MOUNT_PATH = re.compile(r"^/([A-Za-z0-9._~!$&'()*+,;=:@-]+(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*)?/?$")


class ConfigError(Exception):
    """A configuration mistake, naming the file, the key and the problem."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The ``[server]`` table."""

    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: Path = Path("state")
    access_log: bool = True
    max_xml_size: int = 1 << 20
    shutdown_timeout: float = 30.0
    lock_timeout: int = 3600
    lock_timeout_max: int = 86400


@dataclass(frozen=True, slots=True)
class MountConfig:
    """One ``[[mounts]]`` table."""

    path: str
    type: str
    backend: str = "filesystem"
    root: Path | None = None
    depth_infinity: bool = False

    @property
    def prefix(self) -> str:
        """The URL prefix without its trailing slash ("" for a mount at /)."""
        return self.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration and where it came from."""

    server: ServerConfig = field(default_factory=ServerConfig)
    mounts: tuple[MountConfig, ...] = ()
    source: str = EMBEDDED


def embedded_default(base: Path) -> Config:
    """What ``davserver serve`` runs without a file: WebDAV of ``./data`` at /."""
    return Config(
        server=ServerConfig(state_dir=base / "state"),
        mounts=(MountConfig(path="/", type="webdav", root=base / "data"),),
    )


def _check_table(
    source: str, where: str, table: Any, cls: type, base: Path, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check a TOML table against a dataclass's fields; return the converted values."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where}: must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: {where}.{key}: unknown key (known keys: {known})")
        kind = fields[key].type
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}
        if "Path" in kind:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{source}: {where}.{key}: must be a path (a string)")
            value = (base / value).resolve()
        else:
            want = expected[kind]
            if not isinstance(value, want) or (kind != "bool" and isinstance(value, bool)):
                raise ConfigError(f"{source}: {where}.{key}: must be of type {kind}")
        out[key] = value
    for key in required:
        if key not in out:
            raise ConfigError(f"{source}: {where}.{key}: missing")
    return out


def _check_mount(source: str, where: str, m: MountConfig) -> None:
    if not _MOUNT_PATH.match(m.path):
        raise ConfigError(
            f"{source}: {where}.path: {m.path!r} must start with / and use plain URL characters"
        )
    if m.type not in MOUNT_TYPES:
        raise ConfigError(
            f"{source}: {where}.type: {m.type!r} is not one of {', '.join(MOUNT_TYPES)}"
        )
    if m.backend not in BACKENDS:
        raise ConfigError(
            f"{source}: {where}.backend: {m.backend!r} is not one of {', '.join(BACKENDS)}"
        )
    if m.backend == "filesystem" and m.root is None:
        raise ConfigError(f"{source}: {where}.root: missing (the folder to serve)")


def parse(data: dict[str, Any], source: str, base: Path) -> Config:
    """Check a parsed TOML document and build the configuration."""
    unknown = set(data) - {"server", "mounts"}
    if unknown:
        raise ConfigError(f"{source}: {sorted(unknown)[0]}: unknown table (use server, mounts)")
    server = ServerConfig(
        **_check_table(source, "server", data.get("server", {}), ServerConfig, base)
    )
    if not 0 <= server.port <= 65535:
        raise ConfigError(f"{source}: server.port: {server.port} is not a TCP port")
    for key in ("lock_timeout", "lock_timeout_max", "max_xml_size"):
        if getattr(server, key) < 1:
            raise ConfigError(f"{source}: server.{key}: must be at least 1")
    raw_mounts = data.get("mounts", [])
    if not isinstance(raw_mounts, list) or not raw_mounts:
        raise ConfigError(f"{source}: mounts: at least one [[mounts]] table is needed")
    mounts: list[MountConfig] = []
    for i, table in enumerate(raw_mounts):
        where = f"mounts[{i}]"
        values = _check_table(source, where, table, MountConfig, base, ("path", "type"))
        mount = MountConfig(**values)
        _check_mount(source, where, mount)
        if any(m.prefix == mount.prefix for m in mounts):
            raise ConfigError(f"{source}: {where}.path: {mount.path!r} is mounted twice")
        mounts.append(mount)
    return Config(server=server, mounts=tuple(mounts), source=source)


def load(path: Path) -> Config:
    """Read and check a TOML configuration file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data, str(path), path.resolve().parent)


def override(config: Config, *, host: str | None, port: int | None, root: Path | None) -> Config:
    """Apply the command line's --host, --port and --root."""
    server = config.server
    if host is not None:
        server = dataclasses.replace(server, host=host)
    if port is not None:
        server = dataclasses.replace(server, port=port)
    mounts = list(config.mounts)
    if root is not None:
        for i, m in enumerate(mounts):
            if m.type == "webdav" and m.backend == "filesystem":
                mounts[i] = dataclasses.replace(m, root=root.resolve())
                break
        else:
            raise ConfigError(f"{config.source}: --root: no filesystem WebDAV mount to apply it to")
    return dataclasses.replace(config, server=server, mounts=tuple(mounts))
