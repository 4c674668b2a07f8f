"""What the operations tests share (importable as ``opsite``): a site with accounts,
written as a TOML file."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt

from davserver.auth import htpasswd

APPS = Path(__file__).parent.parent / "mounts" / "apps"
PASSWORD = "ops-pw"


def basic(user: str = "ops") -> dict[str, str]:
    """The Authorization header of the test account."""
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def make_accounts(tmp_path: Path) -> Path:
    """An htpasswd file with the account ``ops``."""
    path = tmp_path / "users.htpasswd"
    htpasswd.write(path, {"ops": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()})
    return path


def site(tmp_path: Path, accounts: Path, extra: str = "", server: str = "") -> Path:
    """A configuration: WebDAV at /files (open to all), a WSGI app at /w, the status at
    /server-status and the metrics at /metrics (both for the account only), ``extra``
    mounts and ``server`` keys added."""
    (tmp_path / "files").mkdir(exist_ok=True)
    conf = tmp_path / "site.toml"
    conf.write_text(
        f"""
[server]
state_dir = "state"
{server}

[auth]
htpasswd = "{accounts}"

[[mounts]]
path = "/files"
type = "webdav"
root = "files"
access = {{ anonymous = "read-write" }}

[[mounts]]
path = "/w"
type = "wsgi"
app = "wsgiapps:validated"
pythonpath = ["{APPS}"]
access = {{ anonymous = "read-write" }}

[[mounts]]
path = "/server-status"
type = "status"

[[mounts]]
path = "/metrics"
type = "metrics"
{extra}
"""
    )
    return conf
