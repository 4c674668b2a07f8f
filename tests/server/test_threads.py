"""The worker threads every blocking call goes to (davserver/runtime/threads.py)."""

from __future__ import annotations

import asyncio
import os

import pytest

from davserver.runtime.threads import WorkerPool


def _fail() -> None:
    raise ValueError("from a worker")


async def test_results_and_errors_reach_the_loop() -> None:
    pool = WorkerPool(2, "test")
    loop = asyncio.get_running_loop()
    try:
        results = await asyncio.gather(*(pool.submit(loop, pow, i, 2) for i in range(50)))
        assert results == [i * i for i in range(50)]
        with pytest.raises(ValueError, match="from a worker"):
            await pool.submit(loop, _fail)
    finally:
        pool.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
async def test_workers_wait_for_the_loop() -> None:
    """The workers run as batch threads, so a job does not preempt the event loop, which
    keeps the ordinary policy."""
    pool = WorkerPool(1, "test")
    loop = asyncio.get_running_loop()
    try:
        assert await pool.submit(loop, os.sched_getscheduler, 0) == os.SCHED_BATCH
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        pool.close()
