"""What the scheduling feature keeps for its tree, and the key handlers reach it by."""

from __future__ import annotations

from davserver.dav.context import Context, ServiceKey

from .implicit import Scheduler

SCHEDULER_KEY = ServiceKey[Scheduler]("scheduling.scheduler")
"""The tree's scheduler (directory, records, postman, and what requests share with it)."""


def scheduler(ctx: Context) -> Scheduler:
    """The scheduler of the request's tree."""
    return ctx.service(SCHEDULER_KEY)
