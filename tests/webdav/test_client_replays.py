"""Request sequences of real WebDAV clients, replayed byte for byte over a raw socket.

Each constant below is one request exactly as a client puts it on the wire: request line,
header names in the client's spelling and order, CRLFs, and the exact body bytes. Only
these placeholders are filled in before sending:

    {host}    the Host value (the clients sent their server's name and port)
    {prefix}  the mount path ("" or "/dav"); the recordings were made at the server root
    {root}    the mount root as the client names it ("/" or "/dav", no trailing slash)
    {token}   the lock token this server handed out in the LOCK answer

Where a capture exists, the bytes are the capture; where only part of a request was ever
published, the comment says which parts were reconstructed and from what (the client's
own source code, or a capture of the same client's neighbouring request). Nothing here is
copied from another project's code: only the clients' bytes are.

Each test sends a whole sequence over one keep-alive connection (as the clients do) and
asserts what the client depends on: statuses, headers, the XML it parses, and the bytes
that end up on disk.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from conftest import MakeClient
from helpers import snapshot
from lxml import etree

import davserver.locks.manager as lock_manager

D = "{DAV:}"
MS = "{urn:schemas-microsoft-com:}"
APPLE = "{http://www.apple.com/webdav_fs/props/}"

# -- a raw HTTP/1.1 connection ---------------------------------------------------------


@dataclass
class Reply:
    """One response as it came off the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    closed: bool
    """Whether the server closed the connection after this response."""

    def header(self, name: str) -> str | None:
        """The value of a header (the first one of that name), case-insensitively."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def xml(self) -> etree._Element:
        """The body parsed as XML."""
        return etree.fromstring(self.body)


class Wire:
    """One TCP connection that sends requests as given and reads each response whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, raw: bytes) -> Reply:
        """Write one request exactly as given and read its response."""
        self.writer.write(raw)
        await self.writer.drain()
        return await self._read_response(head_only=raw.startswith(b"HEAD "))

    async def _read_response(self, *, head_only: bool) -> Reply:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        reply = Reply(status, headers, b"", closed=False)
        te = (reply.header("Transfer-Encoding") or "").lower()
        if head_only or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in te:
            body = await self._read_chunked()
        elif reply.header("Content-Length") is not None:
            body = await self.reader.readexactly(int(reply.header("Content-Length") or 0))
        else:
            body = await self.reader.read()
        reply.body = body
        if (reply.header("Connection") or "").lower() == "close":
            reply.closed = await self.reader.read() == b""
        return reply

    async def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return bytes(out)
            out += await self.reader.readexactly(size)
            assert await self.reader.readexactly(2) == b"\r\n"


@asynccontextmanager
async def wire(client: TestClient) -> AsyncIterator[Wire]:
    """A fresh connection to the test server."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        yield Wire(reader, writer)
    finally:
        writer.close()


def user_files(root: Path) -> dict[str, bytes | None]:
    """What a user sees in the served folder (davserver's .davprops bookkeeping left out)."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(".davprops")}


def host_of(client: TestClient) -> str:
    """What the clients put in Host: the server's name and port."""
    return f"{client.server.host}:{client.server.port}"


# -- filling in a recording ------------------------------------------------------------


def render(
    recording: bytes, host: str, *, prefix: str = "", token: str = "", body: bytes | None = None
) -> bytes:
    """A recorded request with the placeholders of its head filled in (bodies stay as
    recorded, or are replaced by ``body`` for uploads whose payload is built below), after
    checking that its framing is what the client sends: a Content-Length that matches the
    body, or a well-formed chunked body."""
    head, sep, recorded_body = recording.partition(b"\r\n\r\n")
    assert sep, "a recorded request ends its head with an empty line"
    for key, value in ((b"{host}", host), (b"{prefix}", prefix), (b"{root}", prefix or "/")):
        head = head.replace(key, value.encode())
    head = head.replace(b"{token}", token.encode())
    assert b"{" not in head, f"unfilled placeholder in {head!r}"
    payload = recorded_body if body is None else body
    fields = dict(
        (k.strip().lower(), v.strip())
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )
    if b"transfer-encoding" in fields:
        assert dechunk(payload) is not None, "a chunked recording must end with the last chunk"
    else:
        assert int(fields.get(b"content-length", b"0")) == len(payload), head
    return head + sep + payload


def chunked(data: bytes, size: int = 0x2000) -> bytes:
    """``data`` in HTTP/1.1 chunked framing, the way CFNetwork streams a PUT body: hex sizes
    in lower case without padding, ``size`` bytes a chunk, then the empty last chunk."""
    parts = [b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
             for i in range(0, len(data), size)]  # fmt: skip
    return b"".join(parts) + b"0\r\n\r\n"


def dechunk(framed: bytes) -> bytes | None:
    """The payload of a chunked body, or None when the framing is broken."""
    out, pos = bytearray(), 0
    while True:
        end = framed.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(framed[pos:end], 16)
        pos = end + 2
        if size == 0:
            return bytes(out) if framed[pos:] == b"\r\n" else None
        out += framed[pos : pos + size]
        if framed[pos + size : pos + size + 2] != b"\r\n":
            return None
        pos += size + 2


# -- small readers of the XML answers --------------------------------------------------


def responses(reply: Reply) -> dict[str, etree._Element]:
    """The ``DAV:response`` elements of a 207, by href."""
    assert reply.status == 207, (reply.status, reply.body)
    assert reply.body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = reply.xml()
    # Windows parses DAV: elements written with a prefix (CLIENTS.md, item 6).
    assert root.tag == f"{D}multistatus"
    assert root.prefix == "D"
    return {r.findtext(f"{D}href"): r for r in root.iter(f"{D}response")}


def prop(response: etree._Element, name: str, status: int = 200) -> etree._Element | None:
    """A property element of a response, from the propstat with the given status."""
    for propstat in response.iter(f"{D}propstat"):
        if propstat.findtext(f"{D}status") == f"HTTP/1.1 {status} {STATUS_TEXT[status]}":
            found = propstat.find(f"{D}prop/{name}")
            if found is not None:
                return found
    return None


STATUS_TEXT = {200: "OK", 404: "Not Found"}


def activelock(reply: Reply) -> etree._Element:
    """The single ``DAV:activelock`` of a LOCK answer."""
    assert reply.header("Content-Type") == "application/xml; charset=utf-8"
    root = reply.xml()
    assert root.tag == f"{D}prop"
    (lock,) = root.iter(f"{D}activelock")
    return lock


def seconds(lock: etree._Element) -> int:
    """The timeout of an activelock, in seconds."""
    value = lock.findtext(f"{D}timeout") or ""
    assert re.fullmatch(r"Second-\d+", value), value
    return int(value[len("Second-") :])


def about(expected: int) -> range:
    """Timeouts are reported as whole seconds left, counted down from the grant."""
    return range(expected - 2, expected + 1)


def issued_token(reply: Reply) -> str:
    """The token of a LOCK answer: the Lock-Token header, which must match the body."""
    header = reply.header("Lock-Token") or ""
    assert re.fullmatch(r"<urn:uuid:[0-9a-f-]{36}>", header), header
    token = header[1:-1]
    assert activelock(reply).findtext(f"{D}locktoken/{D}href") == token
    return token


# ======================================================================================
# Windows Explorer (the WebClient mini-redirector)
# ======================================================================================
#
# Sources of the bytes:
#  [W1] doc/intro.md ("WebDAV annotations") of a Clojure project named "warden" on GitHub,
#       found through the code index (id 31396306424; its repository name is not shown
#       there): full request dumps of Microsoft-WebDAV-MiniRedir/10.0.17134 against
#       webdav-server 2.4.6 on localhost:1900 -- OPTIONS, PROPFIND, PUT, LOCK, PROPPATCH
#       with If, UNLOCK, MOVE, MKCOL, for the file "Novo Documento de Texto.txt".
#       Its Content-Lengths show the bodies were sent on one line (the PROPPATCH body on
#       one line is exactly the 443 bytes announced); the notes only pretty-printed them.
#       The LOCK owner was redacted to "HOST\user" (4 bytes shorter than the announced
#       Content-Length 204), so the owner is kept as published and the length recomputed.
#  [W2] https://github.com/MaulingMonkey/notes, programming/formats/http1.md: the same
#       OPTIONS header set and order from MiniRedir/10.0.19045 (Windows 10 22H2).
#  [W3] https://github.com/swisspol/GCDWebServer/issues/319: a Wireshark dissection of a
#       MiniRedir/6.1.7601 LOCK with the same header order as [W1] (Cache-Control,
#       Connection, Pragma, Content-Type, User-Agent, translate, Timeout, Content-Length,
#       Host) and no Depth header.
#  [W4] A Java constants file in the code index (id 16124048927) quoting a captured
#       MiniRedir/10.0.19043 GET: Cache-Control, Connection, Pragma, User-Agent, translate,
#       Host (sent through a proxy, hence an absolute URL there; origin-form here).
#  Order of requests when Explorer writes a file: https://github.com/mar10/wsgidav/issues/112
#  (PROPFIND 404, PUT, LOCK, PROPPATCH, HEAD, PUT, PROPPATCH, UNLOCK) and
#  https://github.com/alexbakker/webdav-provider/issues/14 (the same order in an nginx log
#  of MiniRedir/10.0.19042); opening and saving a document:
#  https://github.com/dgraziotin/docker-nginx-webdav-nononsense/issues/8 (PROPFIND, GET,
#  LOCK, ... from MiniRedir/10.0.22000).
#
# Adapted: the User-Agent is 10.0.19045 throughout (header sets are identical in [W1] and
# [W2]); paths carry the mount prefix; the lock token is this server's. Reconstructed, with
# no capture found: the PUT carrying the lock token (header order of [W1]'s PUT with If
# placed after User-Agent as in [W1]'s PROPPATCH), the HEAD (header set of [W4]'s GET), a
# Depth: 1 PROPFIND (the Depth: 0 one of [W1] with the other value), and the second,
# shorter PROPPATCH after the content PUT ([W1]'s body with the two properties
# wsgidav#112 says it carries).

WIN_OPTIONS = (  # [W2], [W1]
    b"OPTIONS / HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_PROPFIND_ROOT = (  # [W1] "PROPFIND / HTTP/1.1" -- the mapped folder, no trailing slash
    b"PROPFIND {root} HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"Depth: 0\r\n"
    b"translate: f\r\n"
    b"Content-Length: 0\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_PROPFIND_ROOT_DEPTH1 = (  # reconstructed: [W1]'s PROPFIND with Depth: 1
    b"PROPFIND {root} HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"Depth: 1\r\n"
    b"translate: f\r\n"
    b"Content-Length: 0\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_FILE = "Novo Documento de Texto.txt"

WIN_PROPFIND_FILE = (  # [W1] "PROPFIND /AutoRun.inf" form, for the file of the session
    b"PROPFIND {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"Depth: 0\r\n"
    b"translate: f\r\n"
    b"Content-Length: 0\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_GET_FILE = (  # [W4]
    b"GET {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Pragma: no-cache\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_HEAD_FILE = (  # reconstructed: [W4]'s header set on HEAD
    b"HEAD {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Pragma: no-cache\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_LOCK_FILE = (  # [W1] (body on one line, owner as published), header order as [W3]
    b"LOCK {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Pragma: no-cache\r\n"
    b'Content-Type: text/xml; charset="utf-8"\r\n'
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Timeout: Second-3600\r\n"
    b"Content-Length: 200\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
    b"</D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>HOST\\user</D:href></D:owner>"
    b"</D:lockinfo>"
)

WIN_OWNER = "HOST\\user"

WIN_PUT_EMPTY = (  # [W1] PUT of a new file (Explorer creates it empty first)
    b"PUT {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Content-Length: 0\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

WIN_SAVED = b"primeira linha\r\nsegunda linha\r\n"

WIN_PUT_LOCKED = (  # reconstructed: [W1]'s PUT with If placed as in [W1]'s PROPPATCH
    b"PUT {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"If: (<{token}>)\r\n"
    b"translate: f\r\n"
    b"Content-Length: 31\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
    b"primeira linha\r\nsegunda linha\r\n"
)

WIN_PUT_WITHOUT_TOKEN = (  # WIN_PUT_LOCKED without its If line (what a second client sends)
    b"PUT {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Connection: Keep-Alive\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Content-Length: 31\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
    b"primeira linha\r\nsegunda linha\r\n"
)

WIN_PROPPATCH_TIMES = (  # [W1], body exactly the 443 bytes announced there
    b"PROPPATCH {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Pragma: no-cache\r\n"
    b'Content-Type: text/xml; charset="utf-8"\r\n'
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"If: (<{token}>)\r\n"
    b"translate: f\r\n"
    b"Content-Length: 443\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
    b"<D:set><D:prop><Z:Win32CreationTime>Sat, 16 Feb 2019 18:24:58 GMT</Z:Win32CreationTime>"
    b"<Z:Win32LastAccessTime>Sat, 16 Feb 2019 18:24:58 GMT</Z:Win32LastAccessTime>"
    b"<Z:Win32LastModifiedTime>Sat, 16 Feb 2019 18:24:58 GMT</Z:Win32LastModifiedTime>"
    b"<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"
)

WIN_PROPPATCH_MTIME = (  # reconstructed: the two properties set again after the content PUT
    b"PROPPATCH {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Pragma: no-cache\r\n"
    b'Content-Type: text/xml; charset="utf-8"\r\n'
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"If: (<{token}>)\r\n"
    b"translate: f\r\n"
    b"Content-Length: 295\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
    b"<D:set><D:prop><Z:Win32LastModifiedTime>Sat, 16 Feb 2019 18:31:07 GMT</Z:Win32LastModifiedTime>"
    b"<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"
)

WIN_UNLOCK_FILE = (  # [W1], no Content-Length
    b"UNLOCK {prefix}/Novo%20Documento%20de%20Texto.txt HTTP/1.1\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: Keep-Alive\r\n"
    b"Pragma: no-cache\r\n"
    b"User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
    b"translate: f\r\n"
    b"Lock-Token: <{token}>\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

PREFIXES = pytest.mark.parametrize("prefix", ["", "/dav"], ids=["mount-at-root", "mount-at-dav"])


def win_href(prefix: str) -> str:
    return f"{prefix}/Novo%20Documento%20de%20Texto.txt"


@PREFIXES
async def test_windows_explorer_maps_the_share_opens_edits_and_saves_a_file(
    make_client: MakeClient, root: Path, prefix: str
) -> None:
    """Map the drive, list it, open the file, lock, save with the token, unlock."""
    (root / WIN_FILE).write_bytes(b"primeira linha\r\n")
    client = await make_client(path=prefix or "/")
    host = host_of(client)
    href = win_href(prefix)

    def req(recording: bytes, token: str = "") -> bytes:
        return render(recording, host, prefix=prefix, token=token)

    async with wire(client) as w:
        # Mapping: OPTIONS on the host root, whatever is mounted there.
        r = await w.send(req(WIN_OPTIONS))
        assert r.status == 200
        assert r.header("DAV").startswith("1, 2")
        assert r.header("MS-Author-Via") == "DAV"
        assert r.body == b""
        assert not r.closed

        # The mapped folder itself, without the trailing slash Windows leaves off.
        r = await w.send(req(WIN_PROPFIND_ROOT))
        (folder,) = responses(r).values()
        assert prop(folder, f"{D}resourcetype").find(f"{D}collection") is not None
        assert (
            prop(folder, f"{D}supportedlock").find(f"{D}lockentry/{D}lockscope/{D}exclusive")
            is not None
        )

        # The listing Explorer shows: the file, with an encoded href and its size.
        r = await w.send(req(WIN_PROPFIND_ROOT_DEPTH1))
        listed = responses(r)
        assert set(listed) == {f"{prefix}/", href}
        assert prop(listed[href], f"{D}getcontentlength").text == "16"
        assert prop(listed[href], f"{D}resourcetype").find(f"{D}collection") is None
        assert prop(listed[href], f"{D}getlastmodified").text.endswith(" GMT")

        # Opening the file: its properties, then its bytes.
        r = await w.send(req(WIN_PROPFIND_FILE))
        (entry,) = responses(r).values()
        assert entry.findtext(f"{D}href") == href
        assert prop(entry, f"{D}lockdiscovery") is not None
        assert len(prop(entry, f"{D}lockdiscovery")) == 0
        r = await w.send(req(WIN_GET_FILE))
        assert r.status == 200
        assert r.body == b"primeira linha\r\n"
        assert r.header("ETag") is not None

        # Editing: Explorer locks the file for the editor; the owner href comes back.
        r = await w.send(req(WIN_LOCK_FILE))
        assert r.status == 200
        token = issued_token(r)
        lock = activelock(r)
        assert lock.findtext(f"{D}owner/{D}href") == WIN_OWNER
        assert lock.find(f"{D}lockscope/{D}exclusive") is not None
        assert lock.findtext(f"{D}depth") == "infinity"  # Windows sends no Depth header
        assert seconds(lock) in about(3600)
        assert lock.findtext(f"{D}lockroot/{D}href") == href

        # Anybody without the token is kept out, and the file stays as it was.
        r = await w.send(req(WIN_PUT_WITHOUT_TOKEN))
        assert r.status == 423
        assert etree.fromstring(r.body).find(f"{D}lock-token-submitted/{D}href").text == href
        assert (root / WIN_FILE).read_bytes() == b"primeira linha\r\n"

        # Saving: the PUT with the token replaces the bytes, then the Win32 times.
        r = await w.send(req(WIN_PUT_LOCKED, token))
        assert r.status == 204
        assert (root / WIN_FILE).read_bytes() == WIN_SAVED
        r = await w.send(req(WIN_PROPPATCH_MTIME, token))
        (patched,) = responses(r).values()
        assert prop(patched, f"{MS}Win32LastModifiedTime") is not None
        assert prop(patched, f"{MS}Win32FileAttributes") is not None

        # Closing the editor.
        r = await w.send(req(WIN_UNLOCK_FILE, token))
        assert r.status == 204
        assert r.body == b""

        # Explorer refreshes the file's properties: unlocked, new size, the times it set.
        r = await w.send(req(WIN_PROPFIND_FILE))
        (entry,) = responses(r).values()
        assert len(prop(entry, f"{D}lockdiscovery")) == 0
        assert prop(entry, f"{D}getcontentlength").text == str(len(WIN_SAVED))
        assert prop(entry, f"{MS}Win32LastModifiedTime").text == "Sat, 16 Feb 2019 18:31:07 GMT"
        assert not r.closed

    assert user_files(root) == {WIN_FILE: WIN_SAVED}


@PREFIXES
async def test_windows_explorer_copies_a_new_file_in(
    make_client: MakeClient, root: Path, prefix: str
) -> None:
    """Explorer's copy of a new file: create it empty, lock, set times, write, unlock."""
    client = await make_client(path=prefix or "/")
    host = host_of(client)
    href = win_href(prefix)

    def req(recording: bytes, token: str = "") -> bytes:
        return render(recording, host, prefix=prefix, token=token)

    async with wire(client) as w:
        r = await w.send(req(WIN_PROPFIND_FILE))
        assert r.status == 404

        r = await w.send(req(WIN_PUT_EMPTY))
        assert r.status == 201
        assert r.header("Location") == f"http://{host}{href}"
        assert (root / WIN_FILE).read_bytes() == b""

        r = await w.send(req(WIN_LOCK_FILE))
        assert r.status == 200  # the file exists now: a plain lock, not a lock-null 201
        token = issued_token(r)
        assert activelock(r).findtext(f"{D}owner/{D}href") == WIN_OWNER

        r = await w.send(req(WIN_PROPPATCH_TIMES, token))
        (patched,) = responses(r).values()
        for name in ("Win32CreationTime", "Win32LastAccessTime", "Win32LastModifiedTime",
                     "Win32FileAttributes"):  # fmt: skip
            assert prop(patched, f"{MS}{name}") is not None, name

        r = await w.send(req(WIN_HEAD_FILE))
        assert r.status == 200
        assert r.header("ETag") is not None
        assert r.header("Last-Modified") is not None
        # RFC 9110 lets a HEAD answer leave Content-Length out; when present it must be 0.
        # (aiohttp drops "Content-Length: 0" from HEAD answers, so it is absent today.)
        assert r.header("Content-Length") in (None, "0")

        r = await w.send(req(WIN_PUT_LOCKED, token))
        assert r.status == 204
        r = await w.send(req(WIN_PROPPATCH_MTIME, token))
        assert r.status == 207
        r = await w.send(req(WIN_UNLOCK_FILE, token))
        assert r.status == 204

        r = await w.send(req(WIN_PROPFIND_FILE))
        (entry,) = responses(r).values()
        assert prop(entry, f"{MS}Win32CreationTime").text == "Sat, 16 Feb 2019 18:24:58 GMT"
        assert prop(entry, f"{MS}Win32LastModifiedTime").text == "Sat, 16 Feb 2019 18:31:07 GMT"
        assert prop(entry, f"{MS}Win32FileAttributes").text == "00000020"
        assert prop(entry, f"{D}getcontentlength").text == str(len(WIN_SAVED))

    assert user_files(root) == {WIN_FILE: WIN_SAVED}


async def test_windows_unlock_with_a_token_it_does_not_hold_leaves_the_lock(
    client: TestClient, root: Path
) -> None:
    """An UNLOCK naming a stale token (after a reconnect) must not free someone's lock."""
    (root / WIN_FILE).write_bytes(b"x")
    host = host_of(client)
    async with wire(client) as w:
        token = issued_token(await w.send(render(WIN_LOCK_FILE, host)))
        stale = "urn:uuid:083b2983-d67d-17c4-003a-0000da197fec"  # the token of [W1]
        r = await w.send(render(WIN_UNLOCK_FILE, host, token=stale))
        assert r.status == 409
        assert b"lock-token-matches-request-uri" in r.body
        r = await w.send(render(WIN_PUT_WITHOUT_TOKEN, host))
        assert r.status == 423
        r = await w.send(render(WIN_UNLOCK_FILE, host, token=token))
        assert r.status == 204
    assert (root / WIN_FILE).read_bytes() == b"x"


# ======================================================================================
# macOS Finder (webdavfs: WebDAVLib for the first probe, WebDAVFS afterwards)
# ======================================================================================
#
# Sources of the bytes:
#  [M1] Apple's source of webdavfs, webdavfs/mount.tproj/webdav_network.c in
#       https://github.com/apple-open-source/macos (commit 948af6f5f639): the exact bodies
#       and header sets of network_readdir (PROPFIND Depth 1), network_statfs (quota
#       PROPFIND), network_create (empty PUT), network_lock (LOCK, and the refresh: no
#       body, Content-Type text/xml, If), network_unlock (Lock-Token), and the streamed
#       PUT of setup_seq_write/create_http_request_message (User-Agent, Accept: */*,
#       X-Expected-Entity-Length when the length is known, If with the lock token; the
#       body goes through CFReadStreamCreateForStreamedHTTPRequest, i.e. chunked).
#       network_mount (OPTIONS, then network_stat's PROPFIND; a DAV header without class 2
#       makes the mount read-only), network_lookup/network_stat (Depth: 0 PROPFIND).
#       webdavfs/mount.tproj/webdavd.h: WEBDAV_PULSE_TIMEOUT "600" -> "Timeout: Second-600".
#  [M2] A public Java file "Webdav.java" in the code index (id 3080059590; repository name
#       not shown there) with wire captures from 2011: "OPTIONS / ... User-Agent:
#       WebDAVLib/1.3, Content-Length: 0, Accept: */*, Connection: close" and a WebDAVFS
#       PROPFIND with headers Host, User-Agent, Content-Length: 179, Accept, Content-Type:
#       text/xml, Depth: 0, (Authorization,) Connection: keep-alive and the 179-byte body
#       that [M1] still sends.
#  [M3] Current User-Agent and the chunked PUT: a comment in an ESP32 WebDAV server quoting
#       Finder's upload ("X-Expected-Entity-Length: 34423 / Transfer-Encoding: Chunked /
#       User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)", first chunk "2000");
#       the capitalised "Chunked": https://github.com/erlyaws/yaws/pull/125 and
#       http://sabre.io/dav/clients/finder/.
#  Order of requests when Finder copies a file in: https://github.com/pydio/pydio-core/issues/581
#  (PROPFIND 404, PUT 201 (empty), LOCK, ... PUT ._name, LOCK ._name, PUT name (chunked),
#  PUT ._name, UNLOCK) and the Finder notes of https://github.com/mikedeboer/jsDAV/wiki/finder.
#
# Adapted: the User-Agent of [M3] everywhere but the WebDAVLib probe; the mount prefix.
# Reconstructed: the header order of requests [M2] does not show (CFNetwork's order of [M2]
# applied: Host, User-Agent, framing, the client's headers in the order [M1] adds them,
# Connection), no Authorization (davserver has none yet), and the payloads: a text file and
# an AppleDouble file built from the AppleDouble v2 layout (RFC 1740), not captured bytes.

MAC_OPTIONS = (  # [M2] (the first probe of a mount, on its own connection)
    b"OPTIONS {prefix}/ HTTP/1.1\r\n"
    b"Host: {host}\r\n"
    b"User-Agent: WebDAVLib/1.3\r\n"
    b"Content-Length: 0\r\n"
    b"Accept: */*\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)

MAC_OPTIONS_FS = (  # [M1] network_getDAVLevel: class 1 makes network_mount mount read-only
    b"OPTIONS {prefix}/ HTTP/1.1\r\n"
    b"Host: {host}\r\n"
    b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
    b"Content-Length: 0\r\n"
    b"Accept: */*\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)

MAC_PROPFIND_ROOT = (  # [M2], body and headers as in [M1] network_stat (mount, lookup)
    b"PROPFIND {prefix}/ HTTP/1.1\r\n"
    b"Host: {host}\r\n"
    b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
    b"Content-Length: 179\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: text/xml\r\n"
    b"Depth: 0\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:">\n'
    b"<D:prop>\n"
    b"<D:getlastmodified/>\n"
    b"<D:getcontentlength/>\n"
    b"<D:creationdate/>\n"
    b"<D:resourcetype/>\n"
    b"</D:prop>\n"
    b"</D:propfind>\n"
)

MAC_PROPFIND_QUOTA = (  # [M1] network_statfs
    b"PROPFIND {prefix}/ HTTP/1.1\r\n"
    b"Host: {host}\r\n"
    b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
    b"Content-Length: 175\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: text/xml\r\n"
    b"Depth: 0\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:">\n'
    b"<D:prop>\n"
    b"<D:quota-available-bytes/>\n"
    b"<D:quota-used-bytes/>\n"
    b"<D:quota/>\n"
    b"<D:quotaused/>\n"
    b"</D:prop>\n"
    b"</D:propfind>\n"
)

MAC_PROPFIND_LIST = (  # [M1] network_readdir with caching (asks for the AppleDouble header)
    b"PROPFIND {prefix}/ HTTP/1.1\r\n"
    b"Host: {host}\r\n"
    b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
    b"Content-Length: 250\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: text/xml\r\n"
    b"Depth: 1\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:">\n'
    b'<D:prop xmlns:A="http://www.apple.com/webdav_fs/props/">\n'
    b"<D:getlastmodified/>\n"
    b"<D:getcontentlength/>\n"
    b"<D:creationdate/>\n"
    b"<D:resourcetype/>\n"
    b"<A:appledoubleheader/>\n"
    b"</D:prop>\n"
    b"</D:propfind>\n"
)


def mac_propfind(name: bytes) -> bytes:
    """[M1] network_lookup -> network_stat: [M2]'s Depth: 0 PROPFIND for one name."""
    return MAC_PROPFIND_ROOT.replace(b"{prefix}/ ", b"{prefix}/" + name + b" ", 1)


def mac_put_empty(name: bytes) -> bytes:
    """[M1] network_create: the empty PUT that creates a file before it is written."""
    return (
        b"PUT {prefix}/" + name + b" HTTP/1.1\r\n"
        b"Host: {host}\r\n"
        b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
        b"Content-Length: 0\r\n"
        b"Accept: */*\r\n"
        b"Connection: keep-alive\r\n"
        b"\r\n"
    )


def mac_lock(name: bytes) -> bytes:
    """[M1] network_lock, a new lock: Depth 0, ten minutes, the webdav_fs owner URL."""
    return (
        b"LOCK {prefix}/" + name + b" HTTP/1.1\r\n"
        b"Host: {host}\r\n"
        b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
        b"Content-Length: 229\r\n"
        b"Accept: */*\r\n"
        b"Depth: 0\r\n"
        b"Timeout: Second-600\r\n"
        b'Content-Type: text/xml; charset="utf-8"\r\n'
        b"Connection: keep-alive\r\n"
        b"\r\n"
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<D:lockinfo xmlns:D="DAV:">\n'
        b"<D:lockscope><D:exclusive/></D:lockscope>\n"
        b"<D:locktype><D:write/></D:locktype>\n"
        b"<D:owner>\n"
        b"<D:href>http://www.apple.com/webdav_fs/</D:href>\n"
        b"</D:owner>\n"
        b"</D:lockinfo>\n"
    )


MAC_OWNER = "http://www.apple.com/webdav_fs/"


def mac_lock_refresh(name: bytes) -> bytes:
    """[M1] network_lock with refresh set: no body, Content-Type text/xml, the If header."""
    return (
        b"LOCK {prefix}/" + name + b" HTTP/1.1\r\n"
        b"Host: {host}\r\n"
        b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
        b"Content-Length: 0\r\n"
        b"Accept: */*\r\n"
        b"Depth: 0\r\n"
        b"Timeout: Second-600\r\n"
        b"Content-Type: text/xml\r\n"
        b"If: (<{token}>)\r\n"
        b"Connection: keep-alive\r\n"
        b"\r\n"
    )


def mac_put_chunked(name: bytes, length: int, *, with_token: bool = True) -> bytes:
    """[M1] setup_seq_write + [M3]: a streamed (chunked) PUT announcing its length."""
    lines = [
        b"PUT {prefix}/" + name + b" HTTP/1.1",
        b"Host: {host}",
        b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)",
        b"Transfer-Encoding: Chunked",
        b"Accept: */*",
        b"X-Expected-Entity-Length: " + str(length).encode(),
        *([b"If: (<{token}>)"] if with_token else []),
        b"Connection: keep-alive",
    ]
    # The body is given to render(body=...); an empty chunked body stands in for it here.
    return b"\r\n".join(lines) + b"\r\n\r\n" + b"0\r\n\r\n"


def mac_unlock(name: bytes) -> bytes:
    """[M1] network_unlock."""
    return (
        b"UNLOCK {prefix}/" + name + b" HTTP/1.1\r\n"
        b"Host: {host}\r\n"
        b"User-Agent: WebDAVFS/3.0.0 (03008000) Darwin/25.6.0 (arm64)\r\n"
        b"Content-Length: 0\r\n"
        b"Accept: */*\r\n"
        b"Lock-Token: <{token}>\r\n"
        b"Connection: keep-alive\r\n"
        b"\r\n"
    )


def apple_double(size: int = 4096) -> bytes:
    """An AppleDouble v2 ``._`` file (RFC 1740 layout, as Finder writes beside a file on
    a volume without extended attributes): magic, version, "Mac OS X" filler, a Finder
    Info entry (id 9) padded out, and an empty resource fork (id 2)."""
    fork = (
        struct.pack(">IIII", 256, 256, 0, 30)
        + bytes(240)
        + b"This resource fork intentionally left blank   "
    )
    fork = fork[:286].ljust(286, b"\x00")
    info_len = size - 50 - len(fork)
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    entries = struct.pack(">III", 9, 50, info_len) + struct.pack(
        ">III", 2, 50 + info_len, len(fork)
    )
    finder_info = b"TEXTttxt" + bytes(24) + b"\x00\x00ATTR" + bytes(info_len - 38)
    data = header + entries + finder_info + fork
    assert len(data) == size and data[:4] == b"\x00\x05\x16\x07"
    return data


MAC_TEXT = b"".join(b"line %05d of a file Finder copied in\n" % i for i in range(540))  # 20 kB
MAC_NAME = b"somefile.txt"
MAC_DOUBLE = b"._somefile.txt"


@PREFIXES
async def test_macos_finder_copies_a_file_in_with_its_appledouble_file(
    make_client: MakeClient, root: Path, prefix: str
) -> None:
    """Mount, look around, create both files empty, lock, stream the bytes, unlock."""
    client = await make_client(path=prefix or "/")
    host = host_of(client)
    double = apple_double()
    href = f"{prefix}/somefile.txt"
    double_href = f"{prefix}/._somefile.txt"

    def req(recording: bytes, token: str = "", body: bytes | None = None) -> bytes:
        return render(recording, host, prefix=prefix, token=token, body=body)

    # The mount probe, on a connection of its own that the client closes.
    async with wire(client) as w:
        r = await w.send(req(MAC_OPTIONS))
        assert r.status == 200
        assert r.header("DAV").startswith("1, 2")  # class 2, or Finder mounts read-only
        assert "LOCK" in (r.header("Allow") or "")
        assert r.closed

    async with wire(client) as w:
        # network_mount: the class decides read-write (2) or read-only (1), then the root.
        r = await w.send(req(MAC_OPTIONS_FS))
        assert r.status == 200
        assert [t.strip() for t in (r.header("DAV") or "").split(",")][:2] == ["1", "2"]
        r = await w.send(req(MAC_PROPFIND_ROOT))
        (folder,) = responses(r).values()
        assert folder.findtext(f"{D}href") == f"{prefix}/"
        assert prop(folder, f"{D}resourcetype").find(f"{D}collection") is not None
        assert prop(folder, f"{D}creationdate") is not None

        r = await w.send(req(MAC_PROPFIND_QUOTA))
        (folder,) = responses(r).values()
        assert int(prop(folder, f"{D}quota-available-bytes").text) > 0
        assert int(prop(folder, f"{D}quota-used-bytes").text) >= 0
        assert prop(folder, f"{D}quota", 404) is not None

        r = await w.send(req(MAC_PROPFIND_LIST))
        assert list(responses(r)) == [f"{prefix}/"]

        # Copying in: the file does not exist; Finder creates it empty, then locks it.
        r = await w.send(req(mac_propfind(MAC_NAME)))
        assert r.status == 404
        r = await w.send(req(mac_put_empty(MAC_NAME)))
        assert r.status == 201
        r = await w.send(req(mac_lock(MAC_NAME)))
        assert r.status == 200
        token = issued_token(r)
        lock = activelock(r)
        assert lock.findtext(f"{D}owner/{D}href") == MAC_OWNER
        assert lock.findtext(f"{D}depth") == "0"
        assert seconds(lock) in about(600)

        # The same for the AppleDouble file that carries the Finder metadata.
        r = await w.send(req(mac_propfind(MAC_DOUBLE)))
        assert r.status == 404
        r = await w.send(req(mac_put_empty(MAC_DOUBLE)))
        assert r.status == 201
        r = await w.send(req(mac_lock(MAC_DOUBLE)))
        assert r.status == 200
        double_token = issued_token(r)
        assert double_token != token

        # The bytes, streamed in 8 KiB chunks with the length announced beforehand.
        r = await w.send(req(mac_put_chunked(MAC_NAME, len(MAC_TEXT)), token, chunked(MAC_TEXT)))
        assert r.status == 204
        assert (root / "somefile.txt").read_bytes() == MAC_TEXT

        # A writer that has not got the lock (pydio-core#581 shows Finder getting 423).
        r = await w.send(
            req(mac_put_chunked(MAC_DOUBLE, len(double), with_token=False), body=chunked(double))
        )
        assert r.status == 423
        assert (root / "._somefile.txt").read_bytes() == b""

        r = await w.send(
            req(mac_put_chunked(MAC_DOUBLE, len(double)), double_token, chunked(double))
        )
        assert r.status == 204
        assert (root / "._somefile.txt").read_bytes() == double

        # The pulse thread keeps the lock alive: same lock, ten minutes again.
        r = await w.send(req(mac_lock_refresh(MAC_NAME), token))
        assert r.status == 200
        assert issued_token(r) == token
        assert seconds(activelock(r)) in about(600)
        assert activelock(r).findtext(f"{D}owner/{D}href") == MAC_OWNER

        r = await w.send(req(mac_unlock(MAC_NAME), token))
        assert r.status == 204
        r = await w.send(req(mac_unlock(MAC_DOUBLE), double_token))
        assert r.status == 204

        # Finder lists the folder again: both files, the AppleDouble one too.
        r = await w.send(req(MAC_PROPFIND_LIST))
        listed = responses(r)
        assert set(listed) == {f"{prefix}/", href, double_href}
        assert prop(listed[href], f"{D}getcontentlength").text == str(len(MAC_TEXT))
        assert prop(listed[double_href], f"{D}getcontentlength").text == "4096"
        assert prop(listed[href], f"{APPLE}appledoubleheader", 404) is not None
        assert not r.closed

    assert user_files(root) == {"somefile.txt": MAC_TEXT, "._somefile.txt": double}


async def test_macos_finder_upload_cut_short_keeps_the_old_bytes(
    client: TestClient, root: Path
) -> None:
    """A chunked PUT that ends before X-Expected-Entity-Length bytes (a dropped upload) is
    refused, not stored truncated (CLIENTS.md, item 8)."""
    (root / "somefile.txt").write_bytes(b"the old bytes\n")
    host = host_of(client)
    async with wire(client) as w:
        token = issued_token(await w.send(render(mac_lock(MAC_NAME), host)))
        cut = chunked(MAC_TEXT[:5000])
        r = await w.send(
            render(mac_put_chunked(MAC_NAME, len(MAC_TEXT)), host, token=token, body=cut)
        )
        assert r.status == 400
        assert (root / "somefile.txt").read_bytes() == b"the old bytes\n"
        r = await w.send(render(mac_unlock(MAC_NAME), host, token=token))
        assert r.status == 204
    assert user_files(root) == {"somefile.txt": b"the old bytes\n"}


# ======================================================================================
# Microsoft Office (Word) keeping its lock alive
# ======================================================================================
#
# No full capture of Office's LOCK refresh has been published that I could find, so this
# sequence is reconstructed, from:
#  [O1] https://github.com/mikedeboer/jsDAV/issues/129: a node.js dump (header order kept,
#       names lower-cased by node) of Word 2016 requests: content-type text/xml;
#       charset="utf-8", authorization "Bearer" (Office's empty bearer probe), user-agent
#       "Microsoft Office Word 2014", x-office-major-version 16, x-ms-cookieuri-requested
#       t, x-featureversion 1, depth, translate f, x-idcrl_accepted t, host.
#  [O2] https://github.com/sabre-io/dav/issues/537: Office 2013 sends a LOCK with an empty
#       body and an If header (a refresh), also when it opens a file it locked earlier.
#  [O3] https://github.com/OpenMarshal/npm-WebDAV-Server/issues/101: Word renews its lock
#       with repeated LOCK requests while the document is open.
#  [O4] Word's lockinfo: https://github.com/sabre-io/dav/issues/955 (owner
#       <D:href>computerid/user</D:href>), sent on one line as the Office lockinfo of
#       https://github.com/owncloud/QA/issues/96 (OneNote 2013).
#  [O5] https://github.com/sabre-io/dav/issues/980: Word 2016 once sent the token in a
#       Lock-Token header on PUT instead of If.
# The header-name capitalisation is Office's usual one (the dump of [O1] lower-cases it).

OFFICE_LOCK = (  # [O1] header set and order, [O4] body
    b"LOCK {prefix}/Relat%C3%B3rio.docx HTTP/1.1\r\n"
    b'Content-Type: text/xml; charset="utf-8"\r\n'
    b"Authorization: Bearer\r\n"
    b"User-Agent: Microsoft Office Word 2014\r\n"
    b"X-Office-Major-Version: 16\r\n"
    b"X-MS-CookieUri-Requested: t\r\n"
    b"X-FeatureVersion: 1\r\n"
    b"Timeout: Second-3600\r\n"
    b"translate: f\r\n"
    b"X-IDCRL_ACCEPTED: t\r\n"
    b"Content-Length: 206\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
    b'<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
    b"</D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>computerid/user</D:href>"
    b"</D:owner></D:lockinfo>"
)

OFFICE_OWNER = "computerid/user"

OFFICE_REFRESH = (  # [O1] + [O2]: no body, the token in If
    b"LOCK {prefix}/Relat%C3%B3rio.docx HTTP/1.1\r\n"
    b'Content-Type: text/xml; charset="utf-8"\r\n'
    b"Authorization: Bearer\r\n"
    b"User-Agent: Microsoft Office Word 2014\r\n"
    b"X-Office-Major-Version: 16\r\n"
    b"X-MS-CookieUri-Requested: t\r\n"
    b"X-FeatureVersion: 1\r\n"
    b"If: (<{token}>)\r\n"
    b"Timeout: Second-3600\r\n"
    b"translate: f\r\n"
    b"X-IDCRL_ACCEPTED: t\r\n"
    b"Content-Length: 0\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

OFFICE_DOCX = b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4 + b"PK\x05\x06" + bytes(18)

OFFICE_PUT = (  # [O1] header set on PUT, the token in If
    b"PUT {prefix}/Relat%C3%B3rio.docx HTTP/1.1\r\n"
    b"Authorization: Bearer\r\n"
    b"User-Agent: Microsoft Office Word 2014\r\n"
    b"X-Office-Major-Version: 16\r\n"
    b"X-MS-CookieUri-Requested: t\r\n"
    b"X-FeatureVersion: 1\r\n"
    b"If: (<{token}>)\r\n"
    b"translate: f\r\n"
    b"X-IDCRL_ACCEPTED: t\r\n"
    b"Content-Length: 1054\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

OFFICE_PUT_LOCK_TOKEN_HEADER = (  # [O5]: the token in Lock-Token, no If
    b"PUT {prefix}/Relat%C3%B3rio.docx HTTP/1.1\r\n"
    b"Authorization: Bearer\r\n"
    b"User-Agent: Microsoft Office Word 2014\r\n"
    b"X-Office-Major-Version: 16\r\n"
    b"X-MS-CookieUri-Requested: t\r\n"
    b"X-FeatureVersion: 1\r\n"
    b"Lock-Token: <{token}>\r\n"
    b"translate: f\r\n"
    b"X-IDCRL_ACCEPTED: t\r\n"
    b"Content-Length: 1054\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

OFFICE_UNLOCK = (  # [O1] header set on UNLOCK
    b"UNLOCK {prefix}/Relat%C3%B3rio.docx HTTP/1.1\r\n"
    b"Authorization: Bearer\r\n"
    b"User-Agent: Microsoft Office Word 2014\r\n"
    b"X-Office-Major-Version: 16\r\n"
    b"X-MS-CookieUri-Requested: t\r\n"
    b"X-FeatureVersion: 1\r\n"
    b"Lock-Token: <{token}>\r\n"
    b"translate: f\r\n"
    b"X-IDCRL_ACCEPTED: t\r\n"
    b"Host: {host}\r\n"
    b"\r\n"
)

OFFICE_FILE = "Relatório.docx"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the lock manager's clock forward (the rest of the server keeps real time)."""
    offset = [0.0]
    fake = types.SimpleNamespace(time=lambda: time.time() + offset[0])
    monkeypatch.setattr(lock_manager, "time", fake)

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


@PREFIXES
async def test_office_refreshes_its_lock_and_saves(
    make_client: MakeClient, root: Path, prefix: str, clock: Callable[[float], None]
) -> None:
    """Word locks, refreshes the lock 45 minutes later (empty LOCK with If), saves."""
    (root / OFFICE_FILE).write_bytes(b"PK old document")
    client = await make_client(path=prefix or "/")
    host = host_of(client)

    def req(recording: bytes, token: str = "", body: bytes | None = None) -> bytes:
        return render(recording, host, prefix=prefix, token=token, body=body)

    async with wire(client) as w:
        r = await w.send(req(OFFICE_LOCK))
        assert r.status == 200
        token = issued_token(r)
        assert activelock(r).findtext(f"{D}owner/{D}href") == OFFICE_OWNER
        assert seconds(activelock(r)) in about(3600)

        clock(45 * 60)
        r = await w.send(req(OFFICE_REFRESH, token))
        assert r.status == 200
        assert issued_token(r) == token  # the same lock, not a new one
        lock = activelock(r)
        assert seconds(lock) in about(3600)  # restarted; 900 seconds were left
        assert lock.findtext(f"{D}owner/{D}href") == OFFICE_OWNER
        assert lock.findtext(f"{D}lockroot/{D}href") == f"{prefix}/Relat%C3%B3rio.docx"

        # 40 more minutes: without the refresh the lock would have expired by now.
        clock(40 * 60)
        r = await w.send(req(OFFICE_PUT, token, OFFICE_DOCX))
        assert r.status == 204
        assert (root / OFFICE_FILE).read_bytes() == OFFICE_DOCX
        r = await w.send(req(OFFICE_UNLOCK, token))
        assert r.status == 204

    assert user_files(root) == {OFFICE_FILE: OFFICE_DOCX}


async def test_office_refresh_of_a_lock_the_server_no_longer_has_is_412(
    client: TestClient, root: Path, clock: Callable[[float], None]
) -> None:
    """[O2]: Office refreshes a token from an earlier session; the lock is gone (expired),
    so the refresh fails and no lock is made; Office then takes a new one."""
    (root / OFFICE_FILE).write_bytes(b"PK old document")
    host = host_of(client)
    async with wire(client) as w:
        old = issued_token(await w.send(render(OFFICE_LOCK, host)))
        clock(3601)
        r = await w.send(render(OFFICE_REFRESH, host, token=old))
        assert r.status == 412
        r = await w.send(render(OFFICE_LOCK, host))
        assert r.status == 200
        assert issued_token(r) != old


async def test_office_put_with_the_token_in_lock_token_instead_of_if_is_423(
    client: TestClient, root: Path
) -> None:
    """[O5]: RFC 4918 submits tokens only in If; a Lock-Token header on PUT does not count,
    so this Word quirk gets 423 and the document is not overwritten."""
    (root / OFFICE_FILE).write_bytes(b"PK old document")
    host = host_of(client)
    async with wire(client) as w:
        token = issued_token(await w.send(render(OFFICE_LOCK, host)))
        r = await w.send(render(OFFICE_PUT_LOCK_TOKEN_HEADER, host, token=token, body=OFFICE_DOCX))
        assert r.status == 423
        assert (root / OFFICE_FILE).read_bytes() == b"PK old document"
        r = await w.send(render(OFFICE_UNLOCK, host, token=token))
        assert r.status == 204


def test_recordings_are_framed_as_their_clients_frame_them() -> None:
    """Every recording's Content-Length matches its body, so what is replayed is exactly
    one request (a wrong length would make the server read into the next one)."""
    host = "127.0.0.1:8080"
    recordings = [value for name, value in globals().items()
                  if name.isupper() and isinstance(value, bytes) and b" HTTP/1.1\r\n" in value]  # fmt: skip
    assert len(recordings) >= 20
    for recording in recordings:
        assert recording.count(b"\r\n\r\n") >= 1
        render(recording, host, token="urn:uuid:00000000-0000-0000-0000-000000000000",
               body=OFFICE_DOCX if recording.startswith(b"PUT") and b"Word" in recording else None)  # fmt: skip
    for name in (MAC_NAME, MAC_DOUBLE):
        for recording in (mac_propfind(name), mac_put_empty(name), mac_lock(name),
                          mac_lock_refresh(name), mac_unlock(name)):  # fmt: skip
            render(recording, host, token="urn:uuid:x")
    assert dechunk(chunked(MAC_TEXT)) == MAC_TEXT
    assert chunked(MAC_TEXT).startswith(b"2000\r\n")
