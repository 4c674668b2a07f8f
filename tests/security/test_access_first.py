"""Access is decided before any code of a mount runs, for every method and mount type
(issue #12 a): a refused request runs no CGI script and no WSGI application, its body
reaches neither, and a refused OPTIONS on a DAV mount gets one fixed answer that reaches
no storage and is the same for every path."""

from __future__ import annotations

import base64
import stat
import uuid
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import event
from helpers import snapshot

from davserver.app import ROUTER_KEY, create_app
from davserver.auth import htpasswd
from davserver.config import AccessConfig, AuthConfig, Config, MountConfig, ServerConfig
from davserver.mounts.dav import DavMount

PASSWORD = "ann-pw"
ANN = {"Authorization": "Basic " + base64.b64encode(f"ann:{PASSWORD}".encode()).decode()}
BODY = b"secret body the script must never see"
METHODS = ("OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "PROPFIND", "REPORT", "PATCH")
WSGI_APP = """
from pathlib import Path

MARKER = Path({marker!r})


def application(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    with MARKER.open("ab") as out:
        out.write(environ["REQUEST_METHOD"].encode() + b" " + body + b"\\n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ran"]
"""
CGI_SCRIPT = """#!/bin/sh
{{ printf '%s ' "$REQUEST_METHOD"; cat; echo; }} >> {marker}
printf 'Content-Type: text/plain\\n\\nran'
"""


class Site:
    """A server with the account ann, a CGI mount /cgi and a WSGI mount /app whose
    script and application write every request they see (method and body) to a marker
    file, and DAV mounts /home (owner-only WebDAV) and /caldav."""

    def __init__(self, client: TestClient, tmp_path: Path) -> None:
        self.client = client
        self.tmp_path = tmp_path

    @property
    def marker(self) -> Path:
        return self.tmp_path / "marker"

    def ran(self) -> list[bytes]:
        """What the script and the application saw, one line per request."""
        return self.marker.read_bytes().splitlines() if self.marker.exists() else []

    async def request(
        self, method: str, path: str, body: bytes = b"", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.client.request(method, path, data=body, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def site_config(tmp_path: Path, level: str) -> Config:
    """Anonymous requests at ``level`` on the CGI and WSGI mounts (off elsewhere)."""
    accounts = tmp_path / "users"
    htpasswd.write(accounts, {"ann": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()})
    marker = tmp_path / "marker"
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    script = cgi / "mark.sh"
    script.write_text(CGI_SCRIPT.format(marker=marker))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    module = f"marker_app_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(WSGI_APP.format(marker=str(marker)))
    (tmp_path / "home").mkdir()
    (tmp_path / "calendars").mkdir()
    access = AccessConfig(anonymous=level)
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        auth=AuthConfig(htpasswd=accounts),
        mounts=(
            MountConfig(path="/cgi", type="cgi", root=cgi, access=access),
            MountConfig(
                path="/app", type="wsgi", app=module, pythonpath=(tmp_path,), access=access
            ),
            MountConfig(
                path="/home", type="webdav", root=tmp_path / "home",
                access=AccessConfig(owner_only=True),
            ),
            MountConfig(path="/caldav", type="caldav", root=tmp_path / "calendars"),
        ),
    )  # fmt: skip


@pytest.fixture
def config(request: Any, tmp_path: Path) -> Config:
    """The site with anonymous requests off on every mount (a test may ask for another
    level of its script mounts); made outside the event loop, as it writes files."""
    return site_config(tmp_path, getattr(request, "param", "off"))


@pytest.fixture
async def site(config: Config, aiohttp_client: Any, tmp_path: Path) -> Site:
    return Site(await aiohttp_client(create_app(config)), tmp_path)


@pytest.mark.parametrize("path", ["/cgi/mark.sh", "/app/", "/app/anything"])
async def test_a_refused_request_runs_no_script_and_no_app(site: Site, path: str) -> None:
    for method in METHODS:
        status, headers, _ = await site.request(method, path, BODY)
        assert status == 401, (method, status)
        assert headers["WWW-Authenticate"].startswith("Basic ")
    assert site.ran() == []
    # The marker works: logged in, the same request runs the script or application.
    assert (await site.request("OPTIONS", path, BODY, **ANN))[0] == 200
    assert site.ran() == [b"OPTIONS " + BODY]


@pytest.mark.parametrize("config", ["read-only"], indirect=True)
@pytest.mark.parametrize("path", ["/cgi/mark.sh", "/app/"])
async def test_read_only_on_a_script_mount_means_get_and_head(site: Site, path: str) -> None:
    """What a script or an application does with a method is its own business: read-only
    lets only GET and HEAD reach it (OPTIONS, PROPFIND and REPORT change nothing on a DAV
    mount, but a script may do anything with them)."""
    for method in ("OPTIONS", "POST", "PUT", "DELETE", "PROPFIND", "REPORT", "PATCH"):
        assert (await site.request(method, path, BODY))[0] == 401, method
    assert site.ran() == []
    assert (await site.request("GET", path))[0] == 200
    assert site.ran() == [b"GET "]


class Spy:
    """Wraps the storage methods of a DAV mount and counts every call."""

    NAMES = ("stat", "children", "read", "change", "quota", "versions", "read_version")

    def __init__(self, mount: DavMount) -> None:
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(mount.storage, name, None)
            if original is not None:
                setattr(mount.storage, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Any) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return original(*args, **kwargs)

        return called


async def test_a_refused_options_on_a_dav_mount_is_one_fixed_answer(
    site: Site, tmp_path: Path
) -> None:
    for path in ("/home/ann/", "/home/ann/a.txt"):
        assert (await site.request("MKCOL" if path.endswith("/") else "PUT", path, **ANN))[0] == 201
    item = "/caldav/calendars/ann/calendar/a.ics"
    assert (await site.request("PUT", item, event("a"), **ANN))[0] == 201
    mounts = {m.prefix: m for m in site.client.app[ROUTER_KEY].mounts}
    spies = [Spy(mounts["/home"]), Spy(mounts["/caldav"])]
    before = snapshot(tmp_path)
    answers = {}
    for path in (
        "/home", "/home/", "/home/ann/", "/home/ann/a.txt", "/home/ann/none.txt",
        "/home/bob/", "/home/bob/x/y.txt", "/home/ann/.davprops/x", "/home/ann/a.txt?history",
    ):  # fmt: skip
        status, headers, body = await site.request(
            "OPTIONS", path, BODY, If=f'<{site.client.make_url(path)}> (["x"])'
        )
        answers[path] = (status, body, {k: v for k, v in headers.items() if k not in ("Date",)})
    first = next(iter(answers.values()))
    assert first[0] == 200 and first[1] == b""
    assert "PROPFIND" in first[2]["Allow"] and "DAV" in first[2]
    assert all(a == first for a in answers.values()), "\n".join(
        f"{k}: {v}" for k, v in answers.items()
    )
    caldav = {
        (await site.request("OPTIONS", p))[1]["DAV"]
        for p in ("/caldav/", "/caldav/calendars/ann/calendar/", "/caldav/calendars/bob/x/")
    }
    assert len(caldav) == 1
    assert [s.calls for s in spies] == [[], []]
    assert snapshot(tmp_path) == before
