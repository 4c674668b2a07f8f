"""What the shared state raises when it cannot serve a request."""

from __future__ import annotations


class StateUnavailable(Exception):
    """The shared state cannot be reached (the database is down, restarting, or refuses
    the connection). The request that needed it answers 503; what it was to change in the
    state was changed in full or not at all, and a later request tries again."""


class SchemaTooNew(Exception):
    """The database's schema was made by a newer davserver than this one: refused at
    start, since this version would not know what the newer one keeps there."""
