"""WebDAV-Push with several worker processes: subscriptions made through one worker serve
changes made through any, and each change (made through a worker, or on disk) is
delivered exactly once. Real server processes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from helpers import ServerProcess, start_server
from pushservice import PushService
from pushtools import register_body, seq

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def fresh(method: str, url: str, **kwargs: object) -> requests.Response:
    """A request on a connection of its own (so that requests spread over the workers)."""
    with requests.Session() as session:
        return session.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with two workers and push on, over a folder."""
    (tmp_path / "store").mkdir()
    config = tmp_path / "davserver.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\nworkers = 2\n\n'
        '[push]\nenabled = true\nallow_hosts = ["127.0.0.1"]\nmerge_window = 0.05\n'
        "poll_interval = 0.2\n\n"
        f'[[mounts]]\npath = "/dav"\ntype = "webdav"\nroot = "{tmp_path / "store"}"\n'
    )
    server = start_server(tmp_path, "--config", str(config))
    deadline = time.monotonic() + 60
    while len(psutil.Process(server.proc.pid).children()) < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    yield server
    server.stop()


def test_each_change_is_delivered_once(
    cluster: ServerProcess, service: PushService, tmp_path: Path
) -> None:
    url = cluster.url + "/dav/"
    client = service.client("a")
    resp = fresh(
        "POST", url, data=register_body(client), headers={"Content-Type": "application/xml"}
    )
    assert resp.status_code == 201, resp.text
    changes = 30
    for i in range(changes):
        assert fresh("PUT", f"{url}f{i}.txt", data=b"x").status_code == 201
        service.wait("a", i + 1)
    time.sleep(1.0)
    got = service.messages("a")
    assert len(got) == changes
    numbers = [seq(m.token) for m in got]
    assert numbers == sorted(set(numbers))
    pids = set(re.findall(r"davserver\.access\[(\d+)\]", cluster.log()))
    assert len(pids) == 2  # both workers made changes
    # An outside change: found by one process only.
    (tmp_path / "store" / "outside.txt").write_bytes(b"x")
    service.wait("a", changes + 1, timeout=10)
    time.sleep(1.0)
    assert len(service.messages("a")) == changes + 1
    assert service.rejected == []
