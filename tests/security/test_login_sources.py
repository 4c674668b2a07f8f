"""Several login sources at once (htpasswd, LDAP, a trusted proxy), against a server
process: the first source that knows a user decides, and the access log names the
source of each request (``auth=...``)."""

from __future__ import annotations

import base64
import http.client
import re
import time
from collections.abc import Callable
from pathlib import Path

from helpers import ServerProcess
from ldapserver import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd

from davserver.auth import htpasswd


def get(
    server: ServerProcess, target: str, headers: dict[str, str], source: str = "127.0.0.1"
) -> int:
    """GET ``target`` from the loopback address ``source``; the status."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=30, source_address=(source, 0)
    )
    try:
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        response.read()  # all of it: a listing cut short is logged as a client gone away
        return response.status
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def logged(server: ServerProcess, pattern: str) -> bool:
    """Whether the access log has a line matching ``pattern`` (waiting a little: the line
    is written after the answer is sent)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if re.search(pattern, server.log()):
            return True
        time.sleep(0.05)
    return False


def test_every_source_at_once_and_the_access_log_names_it(
    tmp_path: Path, slapd: Slapd, server_process: Callable[..., ServerProcess]
) -> None:
    htpasswd.write(
        tmp_path / "users",
        {"ann": htpasswd.hash_password("file-pw"), "bob": htpasswd.hash_password("bob-pw")},
    )
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[server]\nstate_dir = "state"\nworkers = 1\n'
        '[auth]\nhtpasswd = "users"\nproxy_header = "X-Remote-User"\n'
        'trusted_proxies = ["127.0.0.2"]\n'
        f'[auth.ldap]\nurl = "{slapd.url}"\nbind_dn = "{SERVICE_DN}"\n'
        f'bind_password = "{SERVICE_PASSWORD}"\nbase = "{PEOPLE}"\nca_file = "{slapd.ca_file}"\n'
        '[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "data"\n'
    )
    server = server_process("--config", str(conf))
    assert get(server, "/?htpasswd", basic("bob", "bob-pw")) == 200
    assert get(server, "/?ldap", basic("dora", "dora-pw")) == 200
    assert get(server, "/?proxy", {"X-Remote-User": "erin"}, source="127.0.0.2") == 200
    assert get(server, "/?anonymous", {}) == 401
    assert logged(server, r'"GET /\?htpasswd HTTP/1.1" 200 .* mount=/ auth=htpasswd')
    assert logged(server, r'"GET /\?ldap HTTP/1.1" 200 .* mount=/ auth=ldap')
    assert logged(server, r'"GET /\?proxy HTTP/1.1" 200 .* mount=/ auth=proxy')
    assert logged(server, r'"GET /\?anonymous HTTP/1.1" 401 .* mount=/ auth=-')
    # ann is in the htpasswd file and in the directory: the file (asked first) decides.
    assert get(server, "/?dir-password", basic("ann", "ann-pw")) == 401
    assert get(server, "/?file-password", basic("ann", "file-pw")) == 200
    assert logged(server, r'"GET /\?file-password HTTP/1.1" 200 .* auth=htpasswd')
    # The header from a peer that is not the proxy.
    assert get(server, "/?forged", {"X-Remote-User": "bob"}) == 401
    assert logged(server, r"X-Remote-User header from 127\.0\.0\.1, which is not a trusted proxy")
    assert logged(server, r'"GET /\?forged HTTP/1.1" 401 .* auth=-')
