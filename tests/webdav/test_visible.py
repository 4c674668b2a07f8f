"""Names that hide or disguise characters (bidi overrides, zero-width and blank
characters, controls, bytes that are not UTF-8) are shown as visible escapes in the HTML
listings of WebDAV and static mounts and in git history pages, by one helper
(davserver.dav.visible); the links still lead to the real names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import lxml.html
import pytest
from aiohttp.test_utils import TestClient
from gitrepo import git

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig
from davserver.dav.visible import plain, visible

RLO = "\u202e"
# name on disk → how the page shows it (the text of the link, escapes included)
NAMES = {
    f"{RLO}txt.exe": "\\u202etxt.exe",
    "zero\u200bwidth.txt": "zero\\u200bwidth.txt",
    "no\u00a0break.txt": "no\\xa0break.txt",
    "hangul\u3164filler.txt": "hangul\\u3164filler.txt",
    "tab\there.txt": "tab\\x09here.txt",
    "isolate\u2066x\u2069.txt": "isolate\\u2066x\\u2069.txt",
    "tag\U000e0041.txt": "tag\\U000e0041.txt",
    "café ✓ שלום.txt": "café ✓ שלום.txt",  # visible letters of any script stay as they are
    "e\u0301.txt": "e\u0301.txt",  # a combining accent stays
}
HIDDEN = re.compile("[\u200b\u202a-\u202e\u2066-\u2069\u00a0\u3164\t\U000e0041]")


def test_visible_marks_up_each_hidden_character() -> None:
    assert visible(f"a{RLO}<b>") == (
        'a<span class="esc" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202e</span>&lt;b&gt;'
    )
    assert visible("plain & simple") == "plain &amp; simple"
    assert visible("bad\udcffbyte") == (
        'bad<span class="esc" title="byte 0xFF, not UTF-8">\\xff</span>byte'
    )
    assert plain(f"a{RLO}&b") == "a\\u202e&amp;b"


def page_links(page: str) -> dict[str, str]:
    """{link text: href} of an HTML page."""
    return {a.text_content(): a.get("href") for a in lxml.html.fromstring(page).iter("a")}


def check_page(page: str) -> None:
    assert not HIDDEN.search(page), "a hidden character reached the page"
    assert not re.search("[\udc80-\udcff]", page)
    assert '<span class="esc" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202e</span>' in page
    assert "span.esc{" in page


async def test_webdav_listing(aiohttp_client: Any, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for name in NAMES:
        (root / name).write_bytes(name.encode())
    (root / f"dir{RLO}").mkdir()
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(MountConfig(path="/dav", type="webdav", root=root),),
    )
    client: TestClient = await aiohttp_client(create_app(config))
    page = await (await client.get("/dav/")).text()
    check_page(page)
    links = page_links(page)
    assert links["dir\\u202e/"] == "/dav/" + quote(f"dir{RLO}") + "/"
    for name, shown in NAMES.items():
        assert links[shown] == "/dav/" + quote(name, safe=""), name
        follow = await client.get(links[shown])
        assert follow.status == 200
        assert await follow.read() == name.encode()


async def test_static_listing(aiohttp_client: Any, tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / f"sub{RLO}dir").mkdir(parents=True)
    for name in NAMES:
        (root / f"sub{RLO}dir" / name).write_bytes(name.encode())
    bad = os.fsencode(root / f"sub{RLO}dir") + b"/bad\xffbyte.txt"
    with open(bad, "wb") as f:
        f.write(b"not utf-8 name")
    config = Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        mounts=(MountConfig(path="/", type="static", root=root, listing=True),),
    )
    client: TestClient = await aiohttp_client(create_app(config))
    resp = await client.get("/" + quote(f"sub{RLO}dir") + "/")
    assert resp.status == 200
    page = (await resp.read()).decode("utf-8")  # valid UTF-8 throughout
    check_page(page)
    assert "<title>Index of /sub\\u202edir/</title>" in page
    links = page_links(page)
    assert links["bad\\xffbyte.txt"] == "./bad%FFbyte.txt"
    assert '<span class="esc" title="byte 0xFF, not UTF-8">\\xff</span>' in page
    for name, shown in NAMES.items():
        assert links[shown] == "./" + quote(name, safe="/@-._~"), name
        follow = await client.get("/" + quote(f"sub{RLO}dir") + "/" + links[shown][2:])
        assert follow.status == 200
        assert await follow.read() == name.encode()


async def test_git_history_page(make_git_client: Any, repo: Path, tmp_path: Path) -> None:
    client: TestClient = await make_git_client()
    name = f"{RLO}txt.exe"
    assert (await client.put("/" + quote(name), data=b"one")).status == 201
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / name).write_bytes(b"two")
    git(clone, "commit", "-qam", f"fix{RLO}gnp.exe")
    git(clone, "push", "-q", "origin", "HEAD:main")
    # The author of a commit pushed from outside: a zero-width space in the name.
    (clone / name).write_bytes(b"three")
    author = {"GIT_AUTHOR_NAME": "Mal\u200blory", "GIT_AUTHOR_EMAIL": "m@example.com"}
    git(clone, "commit", "-qam", "third", env=author)
    git(clone, "push", "-q", "origin", "HEAD:main")
    resp = await client.get("/" + quote(name) + "?history")
    assert resp.status == 200
    page = await resp.text()
    check_page(page)
    assert "<td>PUT /<span" in page  # the server's own message names the path
    assert (
        'fix<span class="esc" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202e</span>gnp.exe' in page
    )
    assert 'Mal<span class="esc" title="U+200B ZERO WIDTH SPACE">\\u200b</span>lory' in page
    assert len(set(re.findall(r"\?version=[0-9a-f]{40}", page))) == 3


@pytest.mark.parametrize("text", ["", "abc", "a b", "\u0301", "✓"])
def test_text_without_hidden_characters_is_only_html_escaped(text: str) -> None:
    assert visible(text) == plain(text) == text
