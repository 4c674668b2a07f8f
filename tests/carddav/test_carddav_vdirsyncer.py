"""vdirsyncer syncs a local folder of 200 contacts with a real `davserver serve` process both
ways (its CardDAV storage, found from the bare server URL), a sync with nothing changed
does nothing, and khard, a command-line address book over vdirsyncer's folder, creates
and edits contacts that reach the server; docs/contacts.md's configuration, as written,
finds the address book."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from carddav_data import CONTACTS, vcard
from helpers import ServerProcess, snapshot

BIN = Path(sys.executable).parent
VDIRSYNCER, KHARD = BIN / "vdirsyncer", BIN / "khard"
COUNT = 200
ACTION = re.compile(r"^(Copying|Updating|Deleting)", re.MULTILINE)


def run(exe: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "y\n" * 10,
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run a tool of the test environment (answering prompts with yes); it must succeed."""
    name = str(exe) if exe.exists() else exe.name
    done = subprocess.run(
        [name, *args], input=stdin, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
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


def field(data: bytes, name: str) -> str:
    found = re.search(rb"^" + name.encode() + rb"[;:](?:[^:\r\n]*:)?(.*?)\r?$", data, re.MULTILINE)
    assert found is not None, (name, data)
    return found.group(1).decode()


def by_uid(folder: Path) -> dict[str, bytes]:
    """The .vcf files of a folder by UID."""
    out = {}
    for path in folder.glob("*.vcf"):
        data = path.read_bytes()
        uid = field(data, "UID")
        assert uid not in out
        out[uid] = data
    return out


def config(tmp_path: Path, server: ServerProcess, local: Path) -> Path:
    path = tmp_path / "vdirsyncer.conf"
    path.write_text(
        f"""[general]
status_path = "{tmp_path / "status"}/"

[pair contacts]
a = "local"
b = "remote"
collections = [["contacts", "contacts", "contacts"]]
conflict_resolution = "a wins"

[storage local]
type = "filesystem"
path = "{local}/"
fileext = ".vcf"

[storage remote]
type = "carddav"
url = "{server.url}/"
""",
        encoding="utf-8",
    )
    return path


def test_vdirsyncer_syncs_200_contacts_both_ways(server_process, tmp_path: Path) -> None:
    server = server_process()  # the embedded default: contacts in the caldav mount
    local = tmp_path / "local"
    (local / "contacts").mkdir(parents=True)
    for i in range(COUNT):
        card = vcard(f"c{i:03d}@vdirsyncer.test", f"Contact {i}", f"N:{i};Contact;;;",
                     f"EMAIL;TYPE=INTERNET:c{i}@example.com", f"TEL;TYPE=CELL:+1 555 {i:04d}")  # fmt: skip
        (local / "contacts" / f"c{i:03d}.vcf").write_bytes(card)
    conf = config(tmp_path, server, local)
    remote = tmp_path / "calendars" / ".addressbooks" / "user" / "contacts"
    run(VDIRSYNCER, "--config", str(conf), "discover")
    first = run(VDIRSYNCER, "--config", str(conf), "sync")
    assert len(ACTION.findall(first.stdout + first.stderr)) == COUNT
    assert by_uid(remote) == by_uid(local / "contacts")  # byte for byte

    # Changes on each side: three edits, one deletion and one addition on each.
    for i in range(3):
        path = local / "contacts" / f"c{i:03d}.vcf"
        path.write_bytes(path.read_bytes().replace(b"FN:Contact", b"FN:Local edit"))
    (local / "contacts" / "c010.vcf").unlink()
    (local / "contacts" / "local-new.vcf").write_bytes(
        vcard("local-new@vdirsyncer.test", "Local new")
    )
    hrefs = {field(p.read_bytes(), "UID"): f"{CONTACTS}{p.name}" for p in remote.glob("*.vcf")}
    for i in range(100, 103):
        href = hrefs[f"c{i:03d}@vdirsyncer.test"]
        status, headers, data = http(server, "GET", href)
        assert status == 200
        status, _, _ = http(
            server, "PUT", href, data.replace(b"FN:Contact", b"FN:Server edit"),
            If_Match=headers["ETag"], Content_Type="text/vcard",
        )  # fmt: skip
        assert status == 204
    assert http(server, "DELETE", hrefs["c110@vdirsyncer.test"])[0] == 204
    status, _, _ = http(
        server, "PUT", f"{CONTACTS}server-new.vcf", vcard("server-new@vdirsyncer.test", "Server new"),
        If_None_Match="*", Content_Type="text/vcard",
    )  # fmt: skip
    assert status == 201

    second = run(VDIRSYNCER, "--config", str(conf), "sync")
    assert len(ACTION.findall(second.stdout + second.stderr)) == 10, second.stdout + second.stderr
    local_items, server_items = by_uid(local / "contacts"), by_uid(remote)
    assert set(local_items) == set(server_items) and len(local_items) == COUNT
    for i in range(3):
        assert field(server_items[f"c{i:03d}@vdirsyncer.test"], "FN") == f"Local edit {i}"
    for i in range(100, 103):
        assert field(local_items[f"c{i:03d}@vdirsyncer.test"], "FN") == f"Server edit {i}"
    for uid, data in local_items.items():
        assert field(data, "FN") == field(server_items[uid], "FN"), uid

    # Nothing changed since: the next sync has nothing to do and touches nothing.
    before = snapshot(local), snapshot(tmp_path / "calendars")
    third = run(VDIRSYNCER, "--config", str(conf), "sync")
    assert ACTION.findall(third.stdout + third.stderr) == [], third.stdout + third.stderr
    assert (snapshot(local), snapshot(tmp_path / "calendars")) == before


def test_khard_creates_and_edits_contacts_that_reach_the_server(
    server_process, tmp_path: Path
) -> None:
    """docs/contacts.md's vdirsyncer and khard configurations, as written, in a HOME of
    their own."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "contacts.md").read_text()
    vdir_config, khard_config = re.findall(r"```ini\n(.*?)```", doc, re.DOTALL)
    server = server_process()
    home = tmp_path / "home"
    (home / ".config" / "khard").mkdir(parents=True)
    conf = tmp_path / "vdirsyncer.conf"
    conf.write_text(vdir_config.replace("http://127.0.0.1:8080/", f"{server.url}/"))
    (home / ".config" / "khard" / "khard.conf").write_text(khard_config)
    env = {"HOME": str(home)}
    for command in ("discover", "sync", "metasync"):
        run(VDIRSYNCER, "--config", str(conf), command, env=env)
    assert (home / ".contacts" / "contacts" / "displayname").read_text() == "Contacts"
    new = "First name : Kay\nLast name : Hard\nEmail :\n    work : kay@example.com\n"
    run(KHARD, "new", "-a", "contacts", env=env, stdin=new)
    run(VDIRSYNCER, "--config", str(conf), "sync", env=env)
    remote = tmp_path / "calendars" / ".addressbooks" / "user" / "contacts"
    [card] = remote.glob("*.vcf")
    assert field(card.read_bytes(), "EMAIL") == "kay@example.com"
    edit = tmp_path / "edit.yaml"
    edit.write_text(new.replace("kay@example.com", "kay@new.example.com"))
    run(KHARD, "edit", "-i", str(edit), "Kay", env=env, stdin="yes\n")
    run(VDIRSYNCER, "--config", str(conf), "sync", env=env)
    [card] = remote.glob("*.vcf")
    assert field(card.read_bytes(), "EMAIL") == "kay@new.example.com"
    assert http(server, "GET", CONTACTS + card.name)[2] == card.read_bytes()
