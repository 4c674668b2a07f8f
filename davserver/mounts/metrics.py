"""The metrics mount: Prometheus's text format, for every worker of the server.

Counters and histograms come from the files every worker writes (runtime/metrics.py);
state that the workers share (locks, index sizes, requests under way) is read by the
worker that answers, through the probes the app gives the mount.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from davserver.dav.paths import strip_query
from davserver.runtime import metrics
from davserver.runtime.threads import offload

log = logging.getLogger("davserver")


class MetricsMount:
    """Answers ``GET <prefix>`` (and ``<prefix>/``) with the metrics."""

    def __init__(self, prefix: str, folder: Path) -> None:
        self.prefix = prefix
        self.folder = folder
        self.probes: list[metrics.Probe] = []
        """Gauges read at each scrape (the app adds them)."""

    async def open(self) -> None:
        """Start counting in this process."""
        await offload(metrics.enable, self.folder)

    async def close(self) -> None:
        """Stop counting (the files stay, for the other workers)."""
        metrics.disable()

    async def _probed(self) -> list[tuple[metrics.Probe, metrics.Rows]]:
        results = await asyncio.gather(*(p.read() for p in self.probes), return_exceptions=True)
        out = []
        for probe, rows in zip(self.probes, results, strict=True):
            if isinstance(rows, BaseException):
                log.warning("metrics: %s could not be read: %s", probe.name, rows)
                continue
            out.append((probe, rows))
        return out

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The metrics in the text exposition format."""
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        if strip_query(request.raw_path)[len(self.prefix) :] not in ("", "/"):
            return web.Response(status=404, text="404 Not Found\n")
        body = await offload(metrics.render_sync, self.folder, await self._probed())
        return web.Response(
            body=body, headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"}
        )
