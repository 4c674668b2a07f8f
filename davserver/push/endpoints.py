"""Which push endpoints the server may send to: the guard against server-side request
forgery (a client naming an internal address as its push endpoint, to have the server
POST there).

An endpoint must be an ``https`` URL of a host whose addresses are all on the public
internet; loopback, private, link-local, multicast, reserved and other non-global addresses
are refused unless ``allow_hosts`` names the host, the address or its network (and only
there may plain ``http`` be used). Host names are checked once resolved, by the resolver
the delivery connects through: it hands the connection only the addresses that pass, so a
name cannot resolve to a public address at the check and to an internal one at the
connection. Redirects are not followed by the client; the sender checks each target again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

MAX_URL = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointRefused(ValueError):
    """A push endpoint the server does not send to; the message says why."""


def _address(text: str) -> IPAddress | None:
    try:
        found = ipaddress.ip_address(text.strip("[]").partition("%")[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


class EndpointPolicy:
    """The rules above, with the hosts and networks ``allow_hosts`` names."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self._names: set[str] = set()
        self._networks: list[Network] = []
        for entry in allow_hosts:
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self._names.add(entry.lower().rstrip("."))

    def _listed(self, host: str) -> bool:
        if host.lower().rstrip(".") in self._names:
            return True
        found = _address(host)
        return found is not None and any(found in net for net in self._networks)

    def address_allowed(self, host: str, address: str) -> bool:
        """Whether the server may connect to ``address`` for the endpoint host ``host``."""
        if host.lower().rstrip(".") in self._names:
            return True
        found = _address(address)
        if found is None:
            return False
        if any(found in net for net in self._networks):
            return True
        return found.is_global and not found.is_multicast

    def check_url(self, url: str) -> tuple[str, int]:
        """The host and port of an endpoint URL the rules allow (before resolution);
        EndpointRefused otherwise."""
        if len(url) > MAX_URL:
            raise EndpointRefused(f"the URL is longer than {MAX_URL} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EndpointRefused(f"not a URL: {exc}") from exc
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host:
            raise EndpointRefused("not an absolute http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise EndpointRefused("the URL carries credentials")
        if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
            raise EndpointRefused("the URL holds spaces or control characters")
        listed = self._listed(host)
        if parts.scheme == "http" and not listed:
            raise EndpointRefused(f"plain http to {host!r}, which allow_hosts does not name")
        if _address(host) is not None and not self.address_allowed(host, host):
            raise EndpointRefused(f"{host!r} is an internal address")
        return host, port or (443 if parts.scheme == "https" else 80)


class GuardedResolver(AbstractResolver):
    """Resolves names as usual and keeps the addresses the policy allows (an error when
    none is left): what the delivery's connections use."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._policy = policy
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``."""
        found = await self._resolver.resolve(host, port, family)
        allowed = [r for r in found if self._policy.address_allowed(host, r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves to no address push messages may go to")
        return allowed

    async def close(self) -> None:
        """Release the resolver."""
        await self._resolver.close()
