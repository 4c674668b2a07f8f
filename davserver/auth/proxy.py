"""A reverse proxy that logs users in itself and names them in a header.

The header (``[auth] proxy_header``) is believed only from the proxy's addresses
(``trusted_proxies``, addresses or networks). From any other peer it would let anyone
choose who they are, so such a request is refused (401, and a log line).
"""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web

from .htpasswd import valid_user_name

log = logging.getLogger("davserver.auth")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyRefused(Exception):
    """The header came from a peer that is not trusted, or names no usable user."""


class TrustedProxy:
    """The user a trusted proxy names in its header."""

    def __init__(self, header: str, trusted: tuple[str, ...]) -> None:
        self.header = header
        self._networks: list[Network] = [ipaddress.ip_network(n) for n in trusted]

    def trusts(self, peer: str | None) -> bool:
        """Whether the peer address is one of the trusted proxies."""
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def user(self, request: web.Request) -> str | None:
        """The user the header names (None: no header, or an empty one: anonymous);
        ``ProxyRefused`` when it may not be believed."""
        values = request.headers.getall(self.header, [])
        if not values:
            return None
        if not self.trusts(request.remote):
            log.warning(
                "%s %s refused: 401, %s header from %s, which is not a trusted proxy",
                request.method, request.raw_path, self.header, request.remote,
            )  # fmt: skip
            raise ProxyRefused
        name = values[0].strip()
        if len(values) > 1 or (name and not valid_user_name(name)):
            log.warning(
                "%s %s refused: 401, the proxy's %s header names no usable user: %r",
                request.method, request.raw_path, self.header, values,
            )  # fmt: skip
            raise ProxyRefused
        return name or None
