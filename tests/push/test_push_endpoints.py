"""Server-side request forgery: push endpoints on internal addresses (loopback, private,
link-local, multicast, reserved; also once a name is resolved, and on a redirect) are
refused unless ``[push] allow_hosts`` names them, and plain http only to those."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pushservice import PushService
from pushtools import MakeServer, P, condition, register, stored, subscribe

from davserver.push.endpoints import EndpointPolicy, EndpointRefused, GuardedResolver

INTERNAL = [
    "127.0.0.1", "127.5.6.7", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "100.64.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.251", "240.0.0.1",
    "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001:db8::1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_refused(address: str) -> None:
    policy = EndpointPolicy()
    assert not policy.address_allowed("push.example", address)
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(EndpointRefused):
        policy.check_url(f"https://{literal}/push")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    policy = EndpointPolicy()
    assert policy.address_allowed("push.example", address)
    literal = f"[{address}]" if ":" in address else address
    policy.check_url(f"https://{literal}/push")


@pytest.mark.parametrize(
    "url",
    [
        "http://push.example/x",  # plain http to a host not allowed
        "ftp://push.example/x",
        "https://user:secret@push.example/x",
        "https:///x",
        "/relative",
        "https://push.example/a b",
        "https://push.example/\r\nX: y",
        "https://push.example:99999/x",
        "https://push.example/" + "x" * 3000,
    ],
)
def test_malformed_or_plain_endpoints_are_refused(url: str) -> None:
    with pytest.raises(EndpointRefused):
        EndpointPolicy().check_url(url)


def test_allow_hosts_names_hosts_addresses_and_networks() -> None:
    policy = EndpointPolicy(["127.0.0.1", "10.0.0.0/8", "Push.Internal", "::1"])
    assert policy.check_url("http://127.0.0.1:8080/x") == ("127.0.0.1", 8080)
    assert policy.check_url("http://10.9.8.7/x") == ("10.9.8.7", 80)
    assert policy.check_url("http://push.internal./x") == ("push.internal.", 80)
    assert policy.check_url("http://[::1]/x") == ("::1", 80)
    assert policy.address_allowed("push.internal", "192.168.1.1")  # named: wherever it is
    assert policy.address_allowed("other.example", "10.1.1.1")
    assert not policy.address_allowed("other.example", "192.168.1.1")
    with pytest.raises(EndpointRefused):
        policy.check_url("http://192.168.1.1/x")


async def test_a_name_resolving_to_an_internal_address_is_refused() -> None:
    resolver = GuardedResolver(EndpointPolicy())
    with pytest.raises(OSError, match="no address"):
        await resolver.resolve("localhost", 443, socket.AF_UNSPEC)
    await resolver.close()
    allowed = GuardedResolver(EndpointPolicy(["127.0.0.0/8", "::1"]))
    assert await allowed.resolve("localhost", 443, socket.AF_UNSPEC)
    await allowed.close()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:{port}/push/a",
        "https://127.0.0.1:{port}/push/a",
        "https://localhost:{port}/push/a",
        "https://[::1]:{port}/push/a",
        "https://10.0.0.1/push/a",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:127.0.0.1]/push/a",
    ],
)
async def test_registration_refuses_internal_endpoints(
    make_server: MakeServer, service: PushService, tmp_path: Path, endpoint: str
) -> None:
    http = await make_server(allow=())
    client = service.client("a")
    url = endpoint.format(port=service.port)
    status, _, body = await register(http, "/dav/", client, endpoint=url)
    assert status == 403 and condition(body) == f"{P}invalid-subscription"
    assert stored(tmp_path) == []
    assert service.hits == 0


async def test_an_allowed_name_is_served(make_server: MakeServer, service: PushService) -> None:
    http = await make_server(allow=("localhost",))
    await subscribe(http, "/dav/", service.client("a", host="localhost"))
    assert (await http.put("/dav/x.txt", data=b"x")).status == 201
    await service.await_messages("a", 1)


class Listener:
    """Counts the connections made to an address."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accept, self.host, 0)
        return int(self.server.sockets[0].getsockname()[1])


async def test_redirects_are_checked_again(http: TestClient, service: PushService) -> None:
    trap = Listener("127.0.0.2")
    port = await trap.start()
    await subscribe(http, "/dav/", service.client("sneaky"))
    await subscribe(http, "/dav/", service.client("moved"))
    service.client("target")
    service.redirects["sneaky"] = f"http://127.0.0.2:{port}/steal"
    service.redirects["moved"] = f"http://127.0.0.1:{service.port}/push/target"
    service.clients["target"] = service.clients["moved"]  # the same keys, a new place
    assert (await http.put("/dav/x.txt", data=b"x")).status == 201
    got = await service.await_messages("target", 1)
    assert got[0].content
    await asyncio.sleep(0.3)
    assert trap.connections == 0 and service.messages("sneaky") == []
    assert trap.server is not None
    trap.server.close()
