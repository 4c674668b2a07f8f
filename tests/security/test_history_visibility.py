"""``?history`` in an owner-only git tree (issue #12 d): the shared root answers with the
history of the requester's own tree only, so no other user's name, address, commit,
commit time or file name appears, in the HTML page or in the JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp.test_utils import TestClient
from caldav_data import event
from gitrepo import git

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AccessConfig, AuthConfig, Config, MountConfig, ServerConfig
from davserver.dav.props import iso_date

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw"}


def auth(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    accounts = tmp_path / "users"
    htpasswd.write(
        accounts,
        {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for u, p in PASSWORDS.items()},
    )
    return Config(
        server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
        auth=AuthConfig(htpasswd=accounts),
        mounts=(
            MountConfig(
                path="/home", type="webdav", backend="git", repo=tmp_path / "home.git",
                access=AccessConfig(owner_only=True),
            ),
            MountConfig(path="/caldav", type="caldav", backend="git", repo=tmp_path / "cal.git"),
        ),
    )  # fmt: skip


async def send(client: TestClient, method: str, path: str, user: str, body: bytes = b"") -> Any:
    resp = await client.request(method, path, data=body, headers=auth(user))
    await resp.read()
    return resp


def log(repo: Path) -> list[tuple[str, int, str]]:
    """(commit id, commit time, author name) of every commit, newest first."""
    lines = git(repo, "log", "--format=%H %ct %an", "main").splitlines()
    return [(c, int(t), a) for c, t, a in (line.split(" ", 2) for line in lines)]


async def test_the_shared_root_shows_only_the_requesters_history(
    config: Config, aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(config))
    steps = [
        ("MKCOL", "/home/ann/", "ann"),
        ("PUT", "/home/ann/ann-diary.txt", "ann"),
        ("MKCOL", "/home/bob/", "bob"),
        ("PUT", "/home/bob/notes.txt", "bob"),
        ("PUT", "/home/ann/ann-diary.txt", "ann"),
        ("PUT", "/home/bob/notes.txt", "bob"),
        ("MOVE", "/home/ann/ann-diary.txt", "ann"),
    ]
    for n, (method, path, user) in enumerate(steps):
        headers = auth(user)
        if method == "MOVE":
            headers["Destination"] = str(client.make_url("/home/ann/ann-secret-plans.txt"))
        body = f"text {n}".encode() if method == "PUT" else b""
        resp = await client.request(method, path, data=body, headers=headers)
        assert resp.status in (201, 204), (method, path, resp.status)
    commits = log(tmp_path / "home.git")
    bobs = [c for c in commits if c[2] == "bob"]
    assert len(bobs) == 3 and len(commits) == 7
    for user in ("bob", "ann"):
        other = "ann" if user == "bob" else "bob"
        own = [c for c in commits if c[2] == user]
        answer = await send(client, "GET", "/home/?history=json", user)
        assert answer.status == 200
        found = json.loads(await answer.read())
        assert [v["version"] for v in found["versions"]] == [c[0] for c in own]
        assert [v["date"] for v in found["versions"]] == [iso_date(c[1]) for c in own]
        page = await send(client, "GET", "/home/?history", user)
        text = await page.text()
        for body in (text, json.dumps(found)):
            assert other not in body.lower()
            for commit, _, _ in commits:
                if commit not in [c[0] for c in own]:
                    assert commit[:12] not in body
        assert text.count("<tr") == len(own) + 1  # a heading row, then one per version
    # Another user's tree, and its history, stay out of reach.
    assert (await send(client, "GET", "/home/ann/?history", "bob")).status == 403
    ann_commit = next(c[0] for c in commits if c[2] == "ann")
    for path in ("/home/", "/home/ann/ann-secret-plans.txt"):
        resp = await send(client, "GET", f"{path}?version={ann_commit}", "bob")
        assert resp.status in (403, 404), path
        assert b"text" not in await resp.read()


async def test_calendar_trees_show_no_history_of_anyone(
    config: Config, aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(config))
    item = "/caldav/calendars/ann/calendar/a.ics"
    assert (await send(client, "PUT", item, "ann", event("a", "Ann's plans"))).status == 201
    for path in ("/caldav/", "/caldav/calendars/", "/caldav/calendars/bob/"):
        for query in ("?history", "?history=json"):
            resp = await send(client, "GET", path + query, "bob")
            assert resp.status == 404, path
            assert b"ann" not in (await resp.read()).lower()
