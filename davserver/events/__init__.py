"""Change events: what every committed change of a mount's storage becomes, and the bus
that hands them to the features that subscribe (see bus.py)."""

from .bus import ChangeEvent, EventBus, LocalBus, Subscriber

__all__ = ["ChangeEvent", "EventBus", "LocalBus", "Subscriber"]
