"""App passwords: ``davserver user app-password add|list|revoke``, logins with them beside
the account password, revocation seen by the next request of every worker, and for
directory (LDAP) users too."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import ServerProcess, free_port
from ldapserver import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd

from davserver.app import create_app
from davserver.auth import apppasswords, htpasswd
from davserver.cli import main
from davserver.config import load

PASSWORD = re.compile(r"^[a-z2-9]{5}(-[a-z2-9]{5}){4}$")


def user(*args: str) -> subprocess.CompletedProcess[str]:
    """``davserver user ARGS``, run in this process (tests/security/test_users.py runs the
    command itself)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["user", *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def basic(name: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_config(tmp_path: Path, auth: str = 'htpasswd = "users"', workers: int = 1) -> Path:
    conf = tmp_path / "conf.toml"
    conf.write_text(
        f'[server]\nstate_dir = "state"\nworkers = {workers}\n[auth]\n{auth}\n'
        '[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "data"\n'
    )
    return conf


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A configuration with the accounts ann and bob (passwords ann-pw, bob-pw)."""
    path = write_config(tmp_path)
    accounts = {name: htpasswd.hash_password(f"{name}-pw") for name in ("ann", "bob")}
    htpasswd.write(tmp_path / "users", accounts)
    return path


def add(conf: Path, name: str, label: str) -> str:
    done = user("--config", str(conf), "app-password", "add", name, label)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_add_prints_the_password_once_and_keeps_a_hash(conf: Path, tmp_path: Path) -> None:
    password = add(conf, "ann", "phone")
    assert PASSWORD.match(password)
    stored = tmp_path / "state" / "app-passwords"
    text = stored.read_text()
    assert text.startswith("ann:phone:")
    assert password not in text
    assert stored.stat().st_mode & 0o077 == 0
    (entry,) = apppasswords.read(stored)
    assert htpasswd.check_password(password, entry.hashed)
    assert entry.hashed.startswith("$2y$")  # bcrypt, like the account passwords
    second = add(conf, "ann", "laptop")
    assert second != password
    listed = user("--config", str(conf), "app-password", "list", "ann").stdout
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["laptop", "phone"]
    assert password not in listed and second not in listed
    assert user("--config", str(conf), "app-password", "list", "bob").stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(("add", "zed", "phone"), "no account 'zed'"),
     (("add", "ann", "phone"), "already has an app password named 'phone'"),
     (("add", "ann", "a:b"), "not a usable name"),
     (("add", "a/b", "x"), "not a usable user name"),
     (("revoke", "ann", "tablet"), "has no app password named 'tablet'"),
     (("revoke", "bob", "phone"), "has no app password named 'phone'")],
)  # fmt: skip
def test_refusals_change_nothing(
    conf: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    add(conf, "ann", "phone")
    stored = tmp_path / "state" / "app-passwords"
    before = stored.read_bytes()
    done = user("--config", str(conf), "app-password", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
    assert stored.read_bytes() == before


def test_app_passwords_need_the_configuration(tmp_path: Path) -> None:
    done = user("--file", str(tmp_path / "users"), "app-password", "add", "ann", "phone")
    assert done.returncode == 2
    assert "need --config" in done.stderr
    assert list(tmp_path.iterdir()) == []


def fresh(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A request on a connection of its own (so that requests spread over the workers)."""
    with requests.Session() as session:
        return session.request(method, url, timeout=30, **kwargs)


def pids_in_log(server: ServerProcess, pattern: str) -> set[str]:
    """Which worker processes wrote access-log lines matching ``pattern``."""
    return set(re.findall(rf"davserver\.access\[(\d+)\]: .*{pattern}", server.log()))


def until_both(server: ServerProcess, pattern: str, request: Callable[[], int]) -> set[int]:
    """Make requests until both workers have logged one matching ``pattern`` (a line is
    written after its answer is sent); the statuses they got."""
    statuses = set()
    deadline = time.monotonic() + 60
    while len(pids_in_log(server, pattern)) < 2:
        assert time.monotonic() < deadline, server.log()
        statuses.add(request())
        time.sleep(0.05)
    return statuses


def test_use_and_revoke_with_two_workers(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = write_config(tmp_path, workers=2)
    htpasswd.write(tmp_path / "users", {"ann": htpasswd.hash_password("ann-pw")})
    phone, laptop = add(conf, "ann", "phone"), add(conf, "ann", "laptop")
    server = server_process("--config", str(conf))
    url = server.url + "/"

    def get(password: str) -> int:
        return fresh("GET", url, headers=basic("ann", password)).status_code

    # Both workers let the phone in (and remember it), and say so in the access log.
    assert until_both(server, '"GET / HTTP/1.1" 200 .* auth=app-password', lambda: get(phone)) == {
        200
    }
    assert fresh("PUT", url + "a.txt", data=b"a", headers=basic("ann", laptop)).status_code == 201
    assert until_both(server, '"GET / HTTP/1.1" 200 .* auth=htpasswd', lambda: get("ann-pw")) == {
        200
    }
    assert user("--config", str(conf), "app-password", "revoke", "ann", "phone").returncode == 0
    # From the next request on, in both workers.
    assert until_both(server, '"GET / HTTP/1.1" 401', lambda: get(phone)) == {401}
    assert get(laptop) == 200
    assert fresh("GET", url, headers=basic("ann", "ann-pw")).status_code == 200
    assert (tmp_path / "data" / "a.txt").read_bytes() == b"a"


async def test_an_app_password_of_an_account_that_is_gone_is_refused(
    aiohttp_client: Any, tmp_path: Path, conf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    phone = await asyncio.to_thread(add, conf, "bob", "phone")
    done = await asyncio.to_thread(user, "--config", str(conf), "remove", "bob")
    assert done.returncode == 0
    client = await aiohttp_client(create_app(await asyncio.to_thread(load, conf)))
    assert (await client.get("/", headers=basic("bob", phone))).status == 401
    assert "app password 'phone' of 'bob' refused: no such account" in caplog.text
    assert (await client.get("/", headers=basic("ann", "ann-pw"))).status == 200


async def test_a_wrong_app_password_is_a_failed_login(
    aiohttp_client: Any, conf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    phone = await asyncio.to_thread(add, conf, "ann", "phone")
    client = await aiohttp_client(create_app(await asyncio.to_thread(load, conf)))
    wrong = phone[:-1] + ("a" if phone[-1] != "a" else "b")  # same hint, one letter off
    assert (await client.get("/", headers=basic("ann", wrong))).status == 401
    assert (await client.get("/", headers=basic("bob", phone))).status == 401  # ann's, not bob's
    assert "failed login for 'ann'" in caplog.text
    assert (await client.get("/", headers=basic("ann", phone))).status == 200


def test_a_broken_app_passwords_file_stops_the_server(conf: Path, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "app-passwords").write_text("ann:phone\n")
    done = subprocess.run(
        [sys.executable, "-m", "davserver", "serve", "--config", str(conf), "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "app-passwords:1: not a 'user:name:created:hint:hash' line" in done.stderr


async def test_app_passwords_of_directory_users(
    aiohttp_client: Any, tmp_path: Path, slapd: Slapd
) -> None:
    ldap = (
        f'ldap = {{ url = "{slapd.url}", bind_dn = "{SERVICE_DN}", '
        f'bind_password = "{SERVICE_PASSWORD}", base = "{PEOPLE}", ca_file = "{slapd.ca_file}" }}'
    )
    conf = write_config(tmp_path, auth=ldap)
    phone = await asyncio.to_thread(add, conf, "dora", "phone")
    done = await asyncio.to_thread(user, "--config", str(conf), "app-password", "add", "zed", "x")
    assert done.returncode == 2
    assert "no account 'zed'" in done.stderr
    client = await aiohttp_client(create_app(await asyncio.to_thread(load, conf)))
    assert (await client.put("/d.txt", data=b"d", headers=basic("dora", phone))).status == 201
    assert (await client.get("/", headers=basic("dora", "dora-pw"))).status == 200
    done = await asyncio.to_thread(
        user, "--config", str(conf), "app-password", "revoke", "dora", "phone"
    )
    assert done.returncode == 0
    assert (await client.get("/", headers=basic("dora", phone))).status == 401
