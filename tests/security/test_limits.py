"""The [server] limits against the real server, over raw loopback sockets: body size (413,
before reading; 100-continue refused; chunked bodies cut off), request line (414) and
headers (431), slow heads (408) and stalled bodies, idle keep-alive connections, the
connection cap and the cap per client address. Every refusal leaves the served trees as they were, and logs a line."""

from __future__ import annotations

import re
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import ServerProcess, snapshot, start_server

MAX_BODY = 4096
READ_TIMEOUT = 0.5
IDLE_TIMEOUT = 1.0

CONFIG = f"""
[server]
max_body_size = {MAX_BODY}
max_request_line = 256
max_header_size = 256
max_headers = 12
read_timeout = {READ_TIMEOUT}
idle_timeout = {IDLE_TIMEOUT}

[[mounts]]
path = "/dav"
type = "webdav"
root = "tree/dav"

[[mounts]]
path = "/cal"
type = "caldav"
root = "tree/cal"

[[mounts]]
path = "/static"
type = "static"
root = "tree/static"

[[mounts]]
path = "/cgi"
type = "cgi"
root = "tree/cgi"

[[mounts]]
path = "/wsgi"
type = "wsgi"
app = "storeapp:app"
pythonpath = ["apps"]
"""

# Both the CGI script and the WSGI app store the whole body they read in tree/out/.
CGI_SCRIPT = f"""#!{sys.executable}
import os, sys
data = sys.stdin.buffer.read()
out = os.path.join(os.path.dirname(__file__), "..", "out", "cgi-%d" % os.getpid())
with open(out, "wb") as f:
    f.write(data)
sys.stdout.write("Status: 201 Created\\r\\nContent-Type: text/plain\\r\\n\\r\\nstored\\n")
"""
WSGI_APP = """
import os, uuid
OUT = {out!r}

def app(environ, start_response):
    data = environ["wsgi.input"].read()
    with open(os.path.join(OUT, "wsgi-" + uuid.uuid4().hex), "wb") as f:
        f.write(data)
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"stored\\n"]
"""

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:big\r\n"
    "DTSTAMP:20250101T000000Z\r\nDTSTART:20250101T100000Z\r\nSUMMARY:{}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
# Where each mount type stores (or would store) a body.
TARGETS = {
    "webdav": ("PUT", "/dav/f.txt"),
    "caldav": ("PUT", "/cal/calendars/user/calendar/big.ics"),
    "static": ("PUT", "/static/f.txt"),
    "cgi": ("POST", "/cgi/store.py"),
    "wsgi": ("POST", "/wsgi/store"),
}


@dataclass
class Site:
    """The running server, the tree it serves (tree/) and its log so far."""

    server: ServerProcess
    tree: Path
    output: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    def log(self) -> str:
        """Everything the server has written so far (read without blocking)."""
        return self.server.log()

    def wait_for_log(self, pattern: str, timeout: float = 3.0) -> str:
        """Wait until a line of the log matches ``pattern``; return the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matches {pattern!r} in:\n{text[-3000:]}")
            time.sleep(0.05)


def make_site(base: Path, config: str) -> Site:
    tree = base / "tree"
    for folder in ("dav", "cal", "static", "cgi", "out"):
        (tree / folder).mkdir(parents=True)
    (tree / "dav" / "f.txt").write_bytes(b"old bytes")
    (tree / "static" / "f.txt").write_bytes(b"static bytes")
    script = tree / "cgi" / "store.py"
    script.write_text(CGI_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (base / "apps").mkdir()
    (base / "apps" / "storeapp.py").write_text(WSGI_APP.format(out=str(tree / "out")))
    (base / "site.toml").write_text(config)
    server = start_server(base, "--config", str(base / "site.toml"))
    site = Site(server, tree)
    # The first CalDAV request makes the user's calendars: before any snapshot is taken.
    assert (
        status(
            exchange(
                site.port,
                request("PROPFIND", "/cal/calendars/user/", {"Depth": "1", "Connection": "close"}),
            )
        )
        == 207
    )
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server with one mount of each type and small limits."""
    site = make_site(tmp_path_factory.mktemp("limits"), CONFIG)
    yield site
    site.server.stop()


# -- raw HTTP -----------------------------------------------------------------------------


def request(method: str, target: str, headers: dict[str, str] | None = None) -> bytes:
    """A request head (no body), with Host and the given headers."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """What the server sends until it closes the connection (a reset ends it too)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return out


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One response (head and Content-Length body) from a kept-alive connection."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise AssertionError(f"connection closed after {data!r}")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; everything sent back until the server closes."""
    with connect(port) as sock:
        sock.sendall(data)
        return read_all(sock, timeout)


def status(reply: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    assert match, f"not an HTTP answer: {reply[:200]!r}"
    return int(match.group(1))


def settled(site: Site, before: dict[str, bytes | None], timeout: float = 3.0) -> None:
    """The tree is (again) exactly as it was: a dropped upload's temporary file may take a
    moment to be removed."""
    deadline = time.monotonic() + timeout
    while snapshot(site.tree) != before:
        if time.monotonic() > deadline:
            assert snapshot(site.tree) == before
        time.sleep(0.05)


# -- body size ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TARGETS))
def test_declared_body_over_the_limit_is_refused_before_it_is_read(site: Site, kind: str) -> None:
    method, target = TARGETS[kind]
    before = snapshot(site.tree)
    head = request(method, target, {"Content-Length": str(MAX_BODY + 1)})
    started = time.monotonic()
    with connect(site.port) as sock:
        sock.sendall(head)  # and no body: the answer must not wait for one
        reply = read_response(sock, timeout=3)
    assert time.monotonic() - started < 1.0
    assert status(reply) == 413
    assert b"connection: close" in reply.lower()
    assert snapshot(site.tree) == before
    site.wait_for_log(rf"{method} {re.escape(target)} from \S+ refused: 413 body of 4097 bytes")


@pytest.mark.parametrize("kind", ["webdav", "cgi", "wsgi"])
def test_expect_100_continue_over_the_limit_gets_413_and_no_100(site: Site, kind: str) -> None:
    method, target = TARGETS[kind]
    before = snapshot(site.tree)
    head = request(method, target, {"Content-Length": str(MAX_BODY + 1), "Expect": "100-continue"})
    with connect(site.port) as sock:
        sock.sendall(head)
        reply = read_response(sock, timeout=3)
        rest = read_all(sock, timeout=3)  # the connection closes; nothing else comes
    assert status(reply) == 413
    assert b"100 Continue" not in reply + rest
    assert rest == b""
    assert snapshot(site.tree) == before


def test_expect_100_continue_within_the_limit_is_continued(site: Site) -> None:
    body = b"x" * MAX_BODY
    head = request(
        "PUT", "/dav/continued.txt", {"Content-Length": str(len(body)), "Expect": "100-continue"}
    )
    with connect(site.port) as sock:
        sock.sendall(head)
        interim = sock.recv(100)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        assert status(read_response(sock)) == 201
    assert (site.tree / "dav" / "continued.txt").read_bytes() == body
    assert (
        status(
            exchange(site.port, request("DELETE", "/dav/continued.txt", {"Connection": "close"}))
        )
        == 204
    )


def test_expect_other_than_100_continue_gets_417_and_stores_nothing(site: Site) -> None:
    """The server hands requests straight to the router (app.direct_handler): an Expect
    it cannot meet is still refused before the handler runs, as aiohttp's dispatch does."""
    before = snapshot(site.tree)
    head = request(
        "PUT",
        "/dav/expected.txt",
        {"Content-Length": "4", "Expect": "gold", "Connection": "close"},
    )
    reply = exchange(site.port, head + b"abcd")
    assert status(reply) == 417
    assert snapshot(site.tree) == before


@pytest.mark.parametrize("kind", ["webdav", "cgi", "wsgi"])
def test_upload_broken_off_by_the_client_stores_nothing(site: Site, kind: str) -> None:
    """A client that goes away in the middle of a chunked body: the handler (a CGI script
    reading its stdin too) must not take what came for the whole body."""
    method, target = TARGETS[kind]
    before = snapshot(site.tree)
    head = request(method, target, {"Transfer-Encoding": "chunked"})
    with connect(site.port) as sock:
        sock.sendall(head + chunk(b"z" * 1000))
        time.sleep(0.5)  # the handler is reading
    time.sleep(0.5)  # time for a wrongly completed upload to be stored
    settled(site, before)
    if kind == "webdav":  # logged as what it is, not as a storage failure
        site.wait_for_log(rf"{method} {target}: client went away")


@pytest.mark.parametrize("kind", ["webdav", "caldav", "cgi", "wsgi"])
@pytest.mark.parametrize("pace", ["at once", "piece by piece"])
def test_chunked_body_growing_past_the_limit_is_cut_off_with_413(
    site: Site, kind: str, pace: str
) -> None:
    """Piece by piece, the handler (a CGI script too) is already reading when the body
    passes the limit: nothing it stored may stay."""
    method, target = TARGETS[kind]
    before = snapshot(site.tree)
    data = EVENT.format("x" * 6000).encode() if kind == "caldav" else b"y" * 6000
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    head = request(
        method, target, {"Transfer-Encoding": "chunked", "Content-Type": "text/calendar"}
    )
    with connect(site.port) as sock:
        if pace == "at once":
            sock.sendall(head + b"".join(chunk(p) for p in pieces))
        else:  # the handler is already reading (and storing) when the body passes the limit
            sock.sendall(head + chunk(pieces[0]))
            time.sleep(0.2)
            for piece in pieces[1:]:
                time.sleep(0.05)
                try:
                    sock.sendall(chunk(piece))
                except (BrokenPipeError, ConnectionResetError):
                    break
        reply = read_all(sock, timeout=3)
    assert status(reply) == 413
    assert reply.count(b"HTTP/1.") == 1  # the 413 and nothing else
    site.wait_for_log(r"refused: 413 chunked body passed max_body_size \(4096 bytes\)")
    try:
        settled(site, before)
    finally:
        for stored in (site.tree / "out").iterdir():
            stored.unlink()


@pytest.mark.parametrize("kind", ["webdav", "wsgi", "cgi"])
def test_chunked_body_at_the_limit_is_stored(site: Site, kind: str) -> None:
    method, target = TARGETS[kind]
    data = b"z" * MAX_BODY
    head = request(method, target, {"Transfer-Encoding": "chunked", "Connection": "close"})
    reply = exchange(site.port, head + chunk(data[:3000]) + chunk(data[3000:]) + b"0\r\n\r\n")
    assert status(reply) == (204 if kind == "webdav" else 201)
    if kind == "webdav":
        assert (site.tree / "dav" / "f.txt").read_bytes() == data
        (site.tree / "dav" / "f.txt").write_bytes(b"old bytes")
    else:
        stored = list((site.tree / "out").iterdir())
        assert [p.read_bytes() for p in stored] == [data]
        stored[0].unlink()


# -- request line and headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "expected", "logged"),
    [
        (
            "long target",
            request("PUT", "/dav/" + "a" * 300),
            414,
            r"refused: 414 request target over max_request_line \(256\)",
        ),
        (
            "long header",
            request("PUT", "/dav/new.txt", {"X-Long": "b" * 300}),
            431,
            r"refused: 431 header over max_header_size \(256\)",
        ),
        (
            "long header name",
            request("PUT", "/dav/new.txt", {"X-" + "n" * 300: "v"}),
            431,
            r"refused: 431 header over max_header_size \(256\)",
        ),
        (
            "too many headers",
            request("PUT", "/dav/new.txt", {f"X-H{i}": "v" for i in range(20)}),
            431,
            r"refused: 431 more than max_headers \(12\) headers",
        ),
    ],
)
def test_oversized_request_heads_are_refused(
    site: Site, name: str, head: bytes, expected: int, logged: str
) -> None:
    before = snapshot(site.tree)
    head = head.replace(b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\n") + b"hello"
    reply = exchange(site.port, head)
    assert status(reply) == expected, name
    assert snapshot(site.tree) == before
    site.wait_for_log(logged)


def test_request_heads_at_the_limits_are_served(site: Site) -> None:
    target = "/dav/" + "a" * (256 - len("/dav/"))
    headers = {f"X-H{i}": "v" for i in range(12 - 2)}  # with Host and Connection: 12
    headers["Connection"] = "close"
    reply = exchange(site.port, request("GET", target, headers))
    assert status(reply) == 404
    long_value = {"X-Long": "b" * (256 - len("X-Long")), "Connection": "close"}
    assert status(exchange(site.port, request("GET", "/dav/f.txt", long_value))) == 200


# -- slow clients ---------------------------------------------------------------------------


def test_a_head_that_stops_halfway_gets_408_after_read_timeout(site: Site) -> None:
    before = snapshot(site.tree)
    with connect(site.port) as sock:
        sock.sendall(b"PUT /dav/f.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
        started = time.monotonic()
        reply = read_all(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert status(reply) == 408
    assert READ_TIMEOUT * 0.8 < elapsed < IDLE_TIMEOUT  # the read timeout, not the idle one
    assert snapshot(site.tree) == before
    site.wait_for_log(r"no complete request head within 0.5s \(read_timeout\): 408")


def test_a_head_sent_byte_by_byte_is_cut_off_after_read_timeout(site: Site) -> None:
    """Dribbling bytes does not restart the clock (slowloris)."""
    head = request("PUT", "/dav/slow.txt", {"Content-Length": "5"})
    with connect(site.port) as sock:
        started = time.monotonic()
        closed_after = None
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            time.sleep(0.05)
        reply = read_all(sock, timeout=2)
    assert closed_after is not None, "the whole head went through"
    assert closed_after < IDLE_TIMEOUT + 0.5
    assert status(reply) == 408
    assert not (site.tree / "dav" / "slow.txt").exists()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_stalls_is_dropped_after_read_timeout(site: Site, framing: str) -> None:
    before = snapshot(site.tree)
    if framing == "chunked":
        # The streamed path: the data goes to a temporary file as it comes.
        head = request("PUT", "/dav/f.txt", {"Transfer-Encoding": "chunked"})
        partial = chunk(b"p" * 1000)
    else:
        head = request("PUT", "/dav/f.txt", {"Content-Length": "3000"})
        partial = b"p" * 1000
    with connect(site.port) as sock:
        sock.sendall(head + partial)
        started = time.monotonic()
        reply = read_all(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert reply == b""  # dropped, no answer
    assert READ_TIMEOUT * 0.8 < elapsed < READ_TIMEOUT + 1.0
    settled(site, before)  # the old file intact, no temporary file left
    site.wait_for_log(r"request body stalled for 0.5s \(read_timeout\): connection dropped")


def test_a_slow_but_steady_body_is_not_dropped(site: Site) -> None:
    data = b"s" * 1000
    head = request("PUT", "/dav/steady.txt", {"Content-Length": str(len(data))})
    with connect(site.port) as sock:
        sock.sendall(head)
        for i in range(0, len(data), 250):  # 1.2 s in all, never 0.5 s silent
            time.sleep(0.3)
            sock.sendall(data[i : i + 250])
        assert status(read_response(sock)) == 201
    assert (site.tree / "dav" / "steady.txt").read_bytes() == data
    (site.tree / "dav" / "steady.txt").unlink()


def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout(site: Site) -> None:
    with connect(site.port) as sock:
        sock.sendall(request("GET", "/dav/f.txt"))
        assert status(read_response(sock)) == 200
        started = time.monotonic()
        assert read_all(sock, timeout=5) == b""
        elapsed = time.monotonic() - started
    assert IDLE_TIMEOUT * 0.8 < elapsed < IDLE_TIMEOUT + 1.0


def test_a_connection_that_never_speaks_is_closed_after_idle_timeout(site: Site) -> None:
    with connect(site.port) as sock:
        started = time.monotonic()
        assert read_all(sock, timeout=5) == b""
        elapsed = time.monotonic() - started
    assert IDLE_TIMEOUT * 0.8 < elapsed < IDLE_TIMEOUT + 1.0


def test_requests_on_a_kept_alive_connection_are_not_timed_out(site: Site) -> None:
    """Between requests the idle timeout applies, not the read timeout: a client pausing
    0.7 s (more than read_timeout) between requests keeps its connection."""
    with connect(site.port) as sock:
        for _ in range(3):
            sock.sendall(request("GET", "/dav/f.txt"))
            assert status(read_response(sock)) == 200
            time.sleep(0.7)


# -- the connection cap ---------------------------------------------------------------------


def test_max_connections_holds_further_clients_until_one_closes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The caps hold per worker process: one worker, so that they count every connection.
    config = '[server]\nworkers = 1\nmax_connections = 2\n[[mounts]]\npath = "/dav"\ntype = "webdav"\nroot = "tree/dav"\n'
    base = tmp_path_factory.mktemp("cap")
    (base / "tree" / "dav").mkdir(parents=True)
    (base / "tree" / "dav" / "f.txt").write_bytes(b"hello")
    (base / "cap.toml").write_text(config)
    server = start_server(base, "--config", str(base / "cap.toml"))
    site = Site(server, base / "tree")
    try:
        first, second = connect(site.port), connect(site.port)
        for sock in (first, second):
            sock.sendall(request("GET", "/dav/f.txt"))
            assert status(read_response(sock)) == 200
        third = connect(site.port)  # the kernel completes the handshake; nobody accepts it
        third.sendall(request("GET", "/dav/f.txt"))
        third.settimeout(0.7)
        with pytest.raises(TimeoutError):
            third.recv(100)
        site.wait_for_log(r"max_connections \(2\) reached: new connections wait")
        first.close()
        started = time.monotonic()
        assert status(read_response(third, timeout=3)) == 200
        assert time.monotonic() - started < 1.0
        # The second connection was kept all along, and still works.
        second.sendall(request("GET", "/dav/f.txt"))
        assert status(read_response(second)) == 200
        second.close()
        third.close()
    finally:
        server.stop()


PER_ADDRESS = 4
HELD = 30  # slow connections one address tries to open: more than max_connections


def closed_at_once(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` without answering, within 0.3 s."""
    sock.settimeout(0.3)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_one_address_at_its_limit_does_not_lock_out_the_others(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Slowloris from one address: it keeps max_connections_per_address connections, every
    further one is closed at once (one log line for them all), and a client from another
    address is answered at once; nothing on disk changes."""
    config = (
        f"[server]\nworkers = 1\nmax_connections = 16\nmax_connections_per_address = {PER_ADDRESS}\n"
        '[[mounts]]\npath = "/dav"\ntype = "webdav"\nroot = "tree/dav"\n'
    )
    base = tmp_path_factory.mktemp("per-address")
    (base / "tree" / "dav").mkdir(parents=True)
    (base / "tree" / "dav" / "f.txt").write_bytes(b"hello")
    (base / "site.toml").write_text(config)
    server = start_server(base, "--config", str(base / "site.toml"))
    site = Site(server, base / "tree")
    # start_server's probe connection is closed once this request has been answered.
    first = exchange(site.port, request("GET", "/dav/f.txt", {"Connection": "close"}))
    assert status(first) == 200
    before = snapshot(site.tree)
    held: list[socket.socket] = []
    try:
        for _ in range(HELD):  # each sends the start of a head, and no more (slowloris)
            sock = connect(site.port)
            sock.sendall(b"GET /dav/f.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            held.append(sock)
        closed = [sock for sock in held if closed_at_once(sock)]
        assert len(closed) == HELD - PER_ADDRESS
        with socket.socket() as other:
            other.settimeout(5)
            other.bind(("127.0.0.2", 0))
            started = time.monotonic()
            other.connect(("127.0.0.1", site.port))
            other.sendall(request("GET", "/dav/f.txt"))
            reply = read_response(other)
            waited = time.monotonic() - started
        assert status(reply) == 200 and reply.endswith(b"hello")
        assert waited < 1.0, f"the other address waited {waited:.2f} s"
        text = site.wait_for_log(r"127\.0\.0\.1 has max_connections_per_address \(4\) open")
        assert len(re.findall(r"max_connections_per_address", text)) == 1
        # A kept connection that closes makes room for one more from the first address.
        kept = [sock for sock in held if sock not in closed]
        kept[0].close()
        deadline = time.monotonic() + 3
        while True:
            with connect(site.port) as again:
                again.sendall(request("GET", "/dav/f.txt"))
                try:
                    if status(read_response(again, timeout=1)) == 200:
                        break
                except (AssertionError, ConnectionResetError):
                    pass  # closed: the server has not seen the close yet
            assert time.monotonic() < deadline, "no room made by a closed connection"
            time.sleep(0.05)
        assert snapshot(site.tree) == before
        assert "Traceback" not in site.log()
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_ipv6_clients_are_counted_by_their_64_network() -> None:
    from davserver.listener import client_key

    one = client_key(("2001:db8:1:2::1", 5000, 0, 0))
    assert one == client_key(("2001:db8:1:2:ffff::9", 5001, 0, 0)) == "2001:db8:1:2::/64"
    assert one != client_key(("2001:db8:1:3::1", 5000, 0, 0))
    assert client_key(("127.0.0.1", 5000)) != client_key(("127.0.0.2", 5000))


def test_pipelined_requests_are_all_answered(site: Site) -> None:
    """Following heads and bodies as they arrive does not get in the way of pipelining."""
    body = b"p" * 100
    batch = (
        request("PUT", "/dav/piped.txt", {"Content-Length": str(len(body))}) + body
        + request("GET", "/dav/piped.txt")
        + request("DELETE", "/dav/piped.txt", {"Connection": "close"})
    )  # fmt: skip
    reply = exchange(site.port, batch)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", reply) == [b"201", b"200", b"204"]
    assert body in reply


def test_no_refusal_left_a_traceback(site: Site) -> None:
    """Run last: every refusal above was a status and a log line, never a crash."""
    text = site.log()
    assert "Traceback" not in text
    assert "Unhandled exception" not in text
    assert "Error handling request" not in text
    assert site.server.proc.poll() is None
