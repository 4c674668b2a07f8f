"""A whole site from one TOML file: static, CGI and WSGI mounts beside WebDAV, routed by
longest prefix, their options checked, their access log lines naming them."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from helpers import ServerProcess

from davserver.config import GZIP_TYPES, ConfigError, load

APPS = Path(__file__).parent / "apps"

SITE = f"""
[server]
access_log = true

[[mounts]]
path = "/"
type = "static"
root = "www"
error_pages = "pages"

[[mounts]]
path = "/dav"
type = "webdav"
root = "dav"
error_pages = "pages"

[[mounts]]
path = "/cgi-bin"
type = "cgi"
root = "cgi"
timeout = 5.0

[[mounts]]
path = "/app"
type = "wsgi"
app = "wsgiapps:hello"
pythonpath = ["{APPS}"]
threads = 2
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The folders and the configuration file of a small site."""
    for folder in ("www", "dav", "cgi", "pages"):
        (tmp_path / folder).mkdir()
    (tmp_path / "www" / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "www" / "dav").mkdir()
    (tmp_path / "www" / "dav" / "shadowed.txt").write_text("never served")
    (tmp_path / "pages" / "404.html").write_text("<p>custom 404</p>")
    script = tmp_path / "cgi" / "hi.sh"
    script.write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\n\\nhi from cgi\\n"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    conf = tmp_path / "site.toml"
    conf.write_text(SITE)
    return conf


async def test_one_server_fronts_the_whole_site(
    site: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--config", str(site))
    base = server.url
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/") as resp:
            assert await resp.text() == "<h1>home</h1>"
        async with s.put(f"{base}/dav/note.txt", data=b"note") as resp:
            assert resp.status == 201
        async with s.get(f"{base}/dav/note.txt") as resp:
            assert await resp.read() == b"note"
        async with s.get(f"{base}/dav/shadowed.txt") as resp:
            assert resp.status == 404  # the WebDAV mount holds /dav, not the static one
            assert await resp.text() == "<p>custom 404</p>"
        async with s.get(f"{base}/missing") as resp:
            assert resp.status == 404
            assert await resp.text() == "<p>custom 404</p>"
        async with s.get(f"{base}/cgi-bin/hi.sh") as resp:
            assert await resp.text() == "hi from cgi\n"
        async with s.get(f"{base}/app/") as resp:
            assert await resp.text() == "Hello, World!"
    assert server.stop() == 0
    output = server.log()
    assert "davserver: wsgi of wsgiapps:hello at" in output
    lines = {
        path: line
        for line in output.splitlines()
        if "davserver.access" in line
        for path in ("/dav/note.txt", "/cgi-bin/hi.sh", "/app/ ", "GET / ", "/missing")
        if path in line
    }
    assert lines["/dav/note.txt"].endswith("mount=/dav auth=-")
    assert lines["/cgi-bin/hi.sh"].endswith("mount=/cgi-bin auth=-")
    assert lines["/app/ "].endswith("mount=/app auth=-")
    assert lines["GET / "].endswith("mount=/ auth=-")
    assert '"GET /missing HTTP/1.1" 404' in lines["/missing"]


def write(tmp_path: Path, text: str) -> Path:
    """A configuration file holding ``text``."""
    path = tmp_path / "conf.toml"
    path.write_text(text)
    return path


def test_options_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    config = load(
        write(
            tmp_path,
            """
            [[mounts]]
            path = "/s"
            type = "static"
            root = "www"
            index = ["index.htm"]
            listing = true
            mime_types = { md = "text/markdown" }
            cache_control = "max-age=60"
            error_pages = "pages"

            [[mounts]]
            path = "/c"
            type = "cgi"
            root = "cgi"
            x_sendfile = ["files"]
            env = { LANG = "C.UTF-8" }

            [[mounts]]
            path = "/w"
            type = "wsgi"
            app = "pkg.mod:make.app"
            pythonpath = ["src"]
            """,
        )
    )
    static, cgi, wsgi = config.mounts
    assert static.index == ("index.htm",)
    assert static.listing is True
    assert static.mime_types == {"md": "text/markdown"}
    assert static.error_pages == tmp_path / "pages"
    assert (static.precompressed, static.gzip, static.gzip_min_size) == (True, True, 1024)
    assert static.gzip_types == GZIP_TYPES
    assert static.cache_ttl == 1.0
    assert cgi.x_sendfile == (tmp_path / "files",)
    assert cgi.env == {"LANG": "C.UTF-8"}
    assert cgi.timeout == 30.0
    assert wsgi.pythonpath == (tmp_path / "src",)
    assert wsgi.threads == 8
    assert wsgi.root is None


@pytest.mark.parametrize(
    "table,message",
    [
        (
            'type = "static"\nroot = "w"\ntimeout = 3.0',
            "mounts[0].timeout: not an option of static",
        ),
        ('type = "wsgi"\napp = "a:b"\nroot = "w"', "mounts[0].root: not an option of wsgi"),
        (
            'type = "webdav"\nroot = "w"\nlisting = true',
            "mounts[0].listing: not an option of webdav",
        ),
        ('type = "cgi"\nroot = "w"\ndepth_infinity = true', "mounts[0].depth_infinity: not an"),
        ('type = "cgi"\nroot = "w"\napp = "a:b"', "mounts[0].app: not an option of cgi"),
        ('type = "static"\nroot = "w"\nbackend = "git"', "mounts[0].backend: not an option"),
        ('type = "static"', "mounts[0].root: missing"),
        ('type = "cgi"', "mounts[0].root: missing"),
        ('type = "wsgi"', "mounts[0].app: '' is not a 'package.module:callable' name"),
        ('type = "wsgi"\napp = "x y:z"', "mounts[0].app: 'x y:z' is not"),
        ('type = "wsgi"\napp = "a:b"\nthreads = 0', "mounts[0].threads: must be at least 1"),
        ('type = "cgi"\nroot = "w"\ntimeout = 0', "mounts[0].timeout: must be at least"),
        ('type = "static"\nroot = "w"\nindex = "a"', "mounts[0].index: must be a list of strings"),
        (
            'type = "static"\nroot = "w"\nmime_types = ["a"]',
            "mounts[0].mime_types: must be a table",
        ),
        ('type = "cgi"\nroot = "w"\nenv = { A = 1 }', "mounts[0].env: must be a table of strings"),
        ('type = "static"\nroot = "w"\nerror_pages = "nope"', "mounts[0].error_pages: "),
        (
            'type = "ftp"\nroot = "w"',
            "mounts[0].type: 'ftp' is not one of",
        ),
    ],
)
def test_mistakes_name_file_and_key(tmp_path: Path, table: str, message: str) -> None:
    path = write(tmp_path, f'[[mounts]]\npath = "/x"\n{table}\n')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_unloadable_wsgi_app_stops_the_server(tmp_path: Path) -> None:
    conf = write(tmp_path, '[[mounts]]\npath = "/w"\ntype = "wsgi"\napp = "no_such_module:app"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "davserver", "serve", "--config", str(conf), "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "WSGI app 'no_such_module:app': cannot load" in proc.stderr
