"""What a server's ``[push]`` table sets, as the push feature takes it."""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86400


@dataclass(frozen=True, slots=True)
class PushSettings:
    """WebDAV-Push settings (docs/configuration.md, ``[push]``)."""

    allow_hosts: tuple[str, ...] = ()
    """Hosts, addresses or networks push endpoints may be on although they are internal
    (loopback, private...); plain HTTP is allowed to them too."""
    contact: str = "mailto:davserver@localhost"
    """The VAPID ``sub`` claim: how a push service reaches the server's operator."""
    max_expiry: int = 7 * DAY
    """The longest a subscription lasts (the draft wants at least three days)."""
    ttl: int = DAY
    """How long a push service keeps a message for an unreachable client (``TTL``)."""
    merge_window: float = 0.2
    """Changes of one collection within this many seconds make one message."""
    poll_interval: float = 1.0
    """How often subscribed collections are looked at for changes made outside."""
    max_subscriptions: int = 1000
    """Live subscriptions one user may have."""
    timeout: float = 10.0
    """Seconds one delivery attempt may take."""
