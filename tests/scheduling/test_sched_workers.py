"""Scheduling in a server of several worker processes: each change is acted upon by the
process that made it, so every message is delivered once; answers that arrive together
(on different workers) are all kept in the organizer's copy."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import requests
from helpers import ServerProcess
from sched_data import PASSWORDS, attendee_line, calendar, inbox, meeting, param

from davserver.auth import htpasswd

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
USERS = ("bob", "cat", "dan", "eve")


def write_config(tmp_path: Path, backend: str) -> Path:
    accounts = tmp_path / "users"
    passwords = {**PASSWORDS, "dan": "dan-pw", "eve": "eve-pw"}
    htpasswd.write(
        accounts,
        {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode() for u, p in passwords.items()},
    )
    store = (
        f'repo = "{tmp_path / "store.git"}"'
        if backend == "git"
        else f'root = "{tmp_path / "store"}"'
    )
    config = tmp_path / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\nworkers = 2\naccess_log = false\n\n'
        f'[auth]\nhtpasswd = "{accounts}"\ndomain = "example.org"\n'
        'addresses = { ann = ["ann@example.org"], bob = ["bob@example.org"] }\n\n'
        f'[[mounts]]\npath = "/caldav"\ntype = "caldav"\nbackend = "{backend}"\n{store}\n'
    )
    return config


def session(server: ServerProcess, user: str) -> Callable[..., requests.Response]:
    auth = (user, {**PASSWORDS, "dan": "dan-pw", "eve": "eve-pw"}[user])

    def call(method: str, path: str, body: bytes = b"", **headers: str) -> requests.Response:
        return requests.request(
            method, server.url + path, data=body, auth=auth, headers=headers, timeout=30
        )

    return call


def inbox_items(server: ServerProcess, user: str) -> list[str]:
    ans = session(server, user)("PROPFIND", inbox(user), Depth="1")
    assert ans.status_code == 207
    return [h for h in ans.text.split("<D:href>")[1:] if h.split("<")[0] != inbox(user)]


@pytest.mark.parametrize("backend", ["filesystem", "git"])
def test_each_message_is_delivered_once_and_answers_together_are_kept(
    tmp_path: Path, server_process: Callable[..., ServerProcess], backend: str
) -> None:
    server = server_process("--config", str(write_config(tmp_path, backend)))
    ann = session(server, "ann")
    ans = ann(
        "PUT", calendar("ann") + "m1.ics", meeting("m1", attendees=USERS),
        **{"Content-Type": "text/calendar"},
    )  # fmt: skip
    assert ans.status_code == 201, ans.text
    for user in USERS:
        assert len(inbox_items(server, user)) == 1, user

    def accept(user: str) -> int:
        call = session(server, user)
        path = calendar(user) + "m1.ics"
        data = call("GET", path).content
        answered = data.replace(
            f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{user}@example.org".encode(),
            f"PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:{user}@example.org".encode(),
        )
        assert answered != data
        return call("PUT", path, answered, **{"Content-Type": "text/calendar"}).status_code

    with concurrent.futures.ThreadPoolExecutor(len(USERS)) as pool:
        assert list(pool.map(accept, USERS)) == [204] * len(USERS)
    stored = ann("GET", calendar("ann") + "m1.ics").content
    for user in USERS:
        assert param(attendee_line(stored, user), "PARTSTAT") == "ACCEPTED", (user, server.log())
    assert len(inbox_items(server, "ann")) == len(USERS)
    for user in USERS:
        assert len(inbox_items(server, user)) == 1, user
