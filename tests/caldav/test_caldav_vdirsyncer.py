"""vdirsyncer syncs a local folder of 200 events with a real `davserver serve` process
both ways, and a sync with nothing changed reports nothing and changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from caldav_data import EVENTS, event
from helpers import ServerProcess, snapshot

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
COUNT = 200
# What vdirsyncer prints when it changes something (copying, updating, deleting items).
ACTION = re.compile(r"^(Copying|Updating|Deleting)", re.MULTILINE)


def vdirsyncer(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run vdirsyncer with ``config``, answering any prompt with yes."""
    exe = str(VDIRSYNCER) if VDIRSYNCER.exists() else "vdirsyncer"
    done = subprocess.run(
        [exe, "--config", str(config), *args],
        input="y\n" * 10, capture_output=True, text=True, timeout=120,
        env={**os.environ, "VDIRSYNCER_CONFIG": str(config)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def http(server: ServerProcess, method: str, path: str, data: bytes | None = None, **headers: str):
    """One request to the server; (status, headers, body)."""
    req = urllib.request.Request(
        server.url + path, data=data, method=method,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def summary(data: bytes) -> str:
    return re.search(rb"^SUMMARY:(.*?)\r?$", data, re.MULTILINE).group(1).decode()


def by_uid(folder: Path) -> dict[str, bytes]:
    """The .ics files of a folder by UID."""
    out = {}
    for path in folder.glob("*.ics"):
        data = path.read_bytes()
        uid = re.search(rb"^UID:(.*?)\r?$", data, re.MULTILINE).group(1).decode()
        assert uid not in out
        out[uid] = data
    return out


def test_vdirsyncer_syncs_200_events_both_ways(server_process, tmp_path: Path) -> None:
    server = server_process()  # the embedded default: CalDAV at /caldav/, items in ./calendars
    local = tmp_path / "local"
    (local / "calendar").mkdir(parents=True)
    for i in range(COUNT):
        day = 1 + i % 28
        data = event(
            f"ev{i:03d}@vdirsyncer.test", f"Event {i}",
            start=f"202603{day:02d}T{8 + i % 10:02d}0000Z",
            end=f"202603{day:02d}T{9 + i % 10:02d}0000Z",
        )  # fmt: skip
        (local / "calendar" / f"ev{i:03d}.ics").write_bytes(data)
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        f"""[general]
status_path = "{tmp_path / "status"}/"

[pair davserver]
a = "local"
b = "remote"
collections = [["calendar", "calendar", "calendar"]]
conflict_resolution = "a wins"

[storage local]
type = "filesystem"
path = "{local}/"
fileext = ".ics"

[storage remote]
type = "caldav"
url = "{server.url}/"
""",
        encoding="utf-8",
    )
    remote = tmp_path / "calendars" / "user" / "calendar"

    # discover, then the first sync uploads everything.
    vdirsyncer(config, "discover")
    first = vdirsyncer(config, "sync")
    assert len(ACTION.findall(first.stdout + first.stderr)) == COUNT
    on_server = by_uid(remote)
    assert on_server == by_uid(local / "calendar")
    assert len(on_server) == COUNT

    # Changes on each side: three edits, one deletion and one addition on each.
    for i in range(3):
        path = local / "calendar" / f"ev{i:03d}.ics"
        path.write_bytes(path.read_bytes().replace(b"SUMMARY:Event", b"SUMMARY:Local edit"))
    (local / "calendar" / "ev010.ics").unlink()
    (local / "calendar" / "local-new.ics").write_bytes(
        event("local-new@vdirsyncer.test", "Local new")
    )
    hrefs = {uid: f"{EVENTS}{p.name}" for p in remote.glob("*.ics") for uid in by_uid_file(p)}
    for i in range(100, 103):
        href = hrefs[f"ev{i:03d}@vdirsyncer.test"]
        status, headers, data = http(server, "GET", href)
        assert status == 200
        new = data.replace(b"SUMMARY:Event", b"SUMMARY:Server edit")
        status, _, _ = http(
            server, "PUT", href, new, If_Match=headers["ETag"], Content_Type="text/calendar"
        )
        assert status == 204
    assert http(server, "DELETE", hrefs["ev110@vdirsyncer.test"])[0] == 204
    status, _, _ = http(
        server, "PUT", f"{EVENTS}server-new.ics", event("server-new@vdirsyncer.test", "Server new"),
        If_None_Match="*", Content_Type="text/calendar",
    )  # fmt: skip
    assert status == 201

    second = vdirsyncer(config, "sync")
    assert len(ACTION.findall(second.stdout + second.stderr)) == 10, second.stdout + second.stderr
    local_items, server_items = by_uid(local / "calendar"), by_uid(remote)
    assert set(local_items) == set(server_items)
    assert len(local_items) == COUNT  # 200 - 2 deleted + 2 added
    for uid in ("ev010@vdirsyncer.test", "ev110@vdirsyncer.test"):
        assert uid not in local_items
    for i in range(3):
        uid = f"ev{i:03d}@vdirsyncer.test"
        assert summary(server_items[uid]) == f"Local edit {i}"
    for i in range(100, 103):
        uid = f"ev{i:03d}@vdirsyncer.test"
        assert summary(local_items[uid]) == f"Server edit {i}"
    assert summary(server_items["local-new@vdirsyncer.test"]) == "Local new"
    assert summary(local_items["server-new@vdirsyncer.test"]) == "Server new"
    for uid, data in local_items.items():
        assert summary(data) == summary(server_items[uid]), uid

    # Nothing changed since: the next sync has nothing to do and touches nothing.
    before = snapshot(local), snapshot(tmp_path / "calendars")
    third = vdirsyncer(config, "sync")
    assert ACTION.findall(third.stdout + third.stderr) == [], third.stdout + third.stderr
    assert (snapshot(local), snapshot(tmp_path / "calendars")) == before


def by_uid_file(path: Path) -> list[str]:
    return [m.decode() for m in re.findall(rb"^UID:(.*?)\r?$", path.read_bytes(), re.MULTILINE)]


def test_the_documented_vdirsyncer_and_khal_setup(server_process, tmp_path: Path) -> None:
    """docs/calendars.md's vdirsyncer configuration, as written (in a HOME of its own), finds
    both calendars; after metasync the calendar khal's default_calendar names is there,
    and it is the events calendar."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "calendars.md").read_text()
    vdir_config, khal_config = re.findall(r"```ini\n(.*?)```", doc, re.DOTALL)
    server = server_process()
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(vdir_config.replace("http://127.0.0.1:8080/", f"{server.url}/"))
    exe = str(VDIRSYNCER) if VDIRSYNCER.exists() else "vdirsyncer"
    for command in ("discover", "sync", "metasync"):
        done = subprocess.run(
            [exe, "--config", str(config), command],
            input="y\n" * 10, capture_output=True, text=True, timeout=120,
            env={**os.environ, "HOME": str(home)},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    calendars = home / ".calendars"
    names = {p.name: (p / "displayname").read_text() for p in calendars.iterdir()}
    assert names == {"calendar": "Calendar", "tasks": "Tasks"}
    default = re.search(r"^default_calendar = (.*)$", khal_config, re.MULTILINE)
    assert default is not None, "the khal configuration names no default_calendar"
    assert names["calendar"] == default.group(1)
