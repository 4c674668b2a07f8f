"""The delivery of a mount's push messages, in the background of each process.

The feature hands every change event of the mount made in this process to :meth:`add`,
which only queues it: a request never waits for a push. A task takes what is queued (what
comes within a few milliseconds together), finds the subscriptions the events concern (in
the shared state), and hands each its message. Each subscription has at most one delivery
under way, which is followed by the merge window: what the subscription is owed
meanwhile waits, and goes as one message once the window has passed. So a change after a
quiet window is sent at once, and a burst makes one more message per window. A delivery
that may succeed later is tried again with growing delays (a newer message for the same
subscription replaces the one waiting); a subscription whose push service says it is gone
(404, 410) is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from davserver.events import ChangeEvent
from davserver.runtime import metrics
from davserver.state.subscriptions import SubscriptionStore

from .keys import PushKeys
from .sender import Message, Outcome, Sender
from .triggers import Quiet, ancestors, owed

log = logging.getLogger("davserver.push")

ATTEMPTS = 6
"""Delivery attempts of one message: after 1, 2, 4, 8 and 16 seconds."""
MAX_DELAY = 60.0
"""The longest wait before another attempt (a push service's Retry-After included)."""
CONCURRENCY = 32
"""Deliveries under way at once (per mount)."""
GATHER = 0.02
"""Seconds the changes that come together are gathered, to find whom they concern at once."""

TokenOf = Callable[[str, int], Awaitable[str | None]]
"""The sync token of a collection after change number ``seq`` of the mount."""


class Dispatcher:
    """Turns the change events of mount ``mount`` into push messages."""

    def __init__(
        self,
        mount: str,
        store: SubscriptionStore,
        keys: PushKeys,
        sender: Sender,
        token: TokenOf,
        window: float,
    ) -> None:
        self._mount = mount
        self._store = store
        self._keys = keys
        self._sender = sender
        self._token = token
        self._window = window
        self._pending: list[tuple[ChangeEvent, Quiet]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._under_way: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, Message] = {}
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def start(self) -> None:
        """Start the task that gathers and delivers."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop gathering and drop the deliveries under way."""
        tasks = [t for t in (self._task, *self._under_way.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    def add(self, events: Sequence[ChangeEvent], quiet: Quiet) -> None:
        """Queue events (never waits)."""
        self._pending.extend((event, quiet) for event in events)
        self._wake.set()

    async def _run(self) -> None:
        """Dispatch what is queued, a moment after it comes (what comes meanwhile joins)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER)
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                await self._dispatch(batch)
            except Exception as exc:  # the state may be unusable for a while: go on
                log.warning("push: %d changes of %r not delivered: %s", len(batch), self._mount,
                            exc)  # fmt: skip

    async def _dispatch(self, batch: list[tuple[ChangeEvent, Quiet]]) -> None:
        """Find whom the batch concerns and hand each one its message."""
        paths: set[str] = set()
        removed: set[str] = set()
        for event, _ in batch:
            for path in (event.path, event.to):
                if path is not None:
                    paths.update(ancestors(path))
            if event.is_collection and event.kind in ("deleted", "moved"):
                removed.add(event.path)
        subs = {s.id: s for s in await self._store.at(self._mount, sorted(paths))}
        for path in removed:
            subs.update((s.id, s) for s in await self._store.below(self._mount, path))
        tokens: dict[str, str | None] = {}
        for due in owed(subs.values(), batch):
            sub = due.sub
            token = None
            if due.content:
                if sub.path not in tokens:
                    tokens[sub.path] = await self._token(sub.path, due.seq)
                token = tokens[sub.path]
            topic = self._keys.topic(self._mount, sub.path)
            self._submit(Message(sub, topic, due.content, due.properties, token))

    def _submit(self, message: Message) -> None:
        sub_id = message.sub.id
        if sub_id in self._under_way:
            waiting = self._waiting.get(sub_id)
            self._waiting[sub_id] = waiting.merged(message) if waiting else message
            return
        task = asyncio.get_running_loop().create_task(self._deliver(message))
        self._under_way[sub_id] = task

    async def _deliver(self, message: Message) -> None:
        """Deliver ``message`` (and what its subscription is owed meanwhile) until it
        arrives, cannot, or the attempts run out."""
        sub_id = message.sub.id
        try:
            for attempt in range(1, ATTEMPTS + 1):
                newer = self._waiting.pop(sub_id, None)
                if newer is not None:
                    message = message.merged(newer)
                async with self._limit:
                    result = await self._sender.send(message)
                metrics.push_attempted(result.outcome.value)
                if result.outcome is Outcome.GONE:
                    await self._store.delete(sub_id)
                    self._waiting.pop(sub_id, None)
                    return
                if result.outcome is not Outcome.RETRY:
                    break
                if attempt == ATTEMPTS:
                    log.warning("push to %s: given up after %d attempts", message.sub.endpoint,
                                attempt)  # fmt: skip
                    break
                delay = result.retry_after or float(2 ** (attempt - 1))
                await asyncio.sleep(min(delay, MAX_DELAY))
            # The merge window: what the subscription is owed from now on waits for it.
            await asyncio.sleep(self._window)
        except Exception as exc:
            log.warning("push to %s failed: %s", message.sub.endpoint, exc)
        finally:
            self._under_way.pop(sub_id, None)
        newer = self._waiting.pop(sub_id, None)
        if newer is not None:
            self._submit(newer)
