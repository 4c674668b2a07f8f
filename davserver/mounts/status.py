"""The status mount: what the server is doing, as Apache's mod_status shows it.

``<path>/`` is a page for people, ``<path>/json`` the same as JSON, ``<path>/health`` a
plain answer for load balancers (200 ``ok``, or 503 ``stopping`` once the server has begun
to stop, so a balancer sends new clients elsewhere). A mount with ``health_only`` answers
the health check alone, so that it can be opened to a balancer without showing the rest.
Everything comes from the scoreboard (davserver/state/scoreboard.py), which every worker
writes: the page shows all of them, whichever answers.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from davserver import __version__
from davserver.dav.paths import strip_query
from davserver.runtime.threads import offload
from davserver.state import scoreboard

ALLOW = "GET, HEAD"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def report(folder: Path) -> dict[str, Any]:
    """The server's state as a JSON-ready dict (reads the scoreboard: blocking)."""
    server, workers = scoreboard.read(folder)
    now = time.time()
    started = float(server.get("started", now))
    under_way = sorted(((w.pid, b) for w in workers for b in w.busy), key=lambda x: x[1].began)
    busy = [
        {
            "worker": pid,
            "method": b.method,
            "path": b.path,
            "client": b.client,
            "request_id": b.request_id,
            "age_seconds": round(max(0.0, now - b.began), 3),
        }
        for pid, b in under_way
    ]
    return {
        "version": __version__,
        "pid": server.get("pid"),
        "started": _iso(started),
        "uptime_seconds": round(now - started, 3),
        "requests": sum(w.requests for w in workers),
        "connections": sum(w.connections for w in workers),
        "workers": [
            {
                "pid": w.pid,
                "started": _iso(w.started),
                "requests": w.requests,
                "connections": w.connections,
                "in_flight": len(w.busy),
            }
            for w in workers
        ],
        "in_flight": busy,
    }


def page(state: dict[str, Any], json_url: str) -> str:
    """The HTML page of ``report``'s dict."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{w['pid']}</td><td>{w['started']}</td><td>{w['requests']}</td>"
        f"<td>{w['connections']}</td><td>{w['in_flight']}</td></tr>"
        for w in state["workers"]
    )
    busy = "".join(
        f"<tr><td>{r['age_seconds']:.3f}</td><td>{esc(r['method'])}</td>"
        f"<td>{esc(r['path'])}</td><td>{esc(r['client'])}</td><td>{r['worker']}</td>"
        f"<td>{esc(r['request_id'])}</td></tr>"
        for r in state["in_flight"]
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>davserver status</title>'
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style>"
        f"</head><body><h1>davserver {esc(state['version'])}</h1>"
        f"<p>Started {state['started']}, up {state['uptime_seconds']:.0f} s; "
        f"{state['requests']} requests answered, {state['connections']} connections open, "
        f"{len(state['in_flight'])} requests under way. "
        f'<a href="{esc(json_url)}">JSON</a></p>'
        "<h2>Workers</h2><table><tr><th>pid</th><th>started</th><th>requests</th>"
        f"<th>connections</th><th>under way</th></tr>{rows}</table>"
        "<h2>Requests under way</h2><table><tr><th>age (s)</th><th>method</th><th>path</th>"
        f"<th>client</th><th>worker</th><th>request id</th></tr>{busy}</table>"
        "</body></html>\n"
    )


class StatusMount:
    """Answers the status page, its JSON and the health check below ``prefix``."""

    def __init__(self, prefix: str, folder: Path, health_only: bool = False) -> None:
        self.prefix = prefix
        self.folder = folder
        self.health_only = health_only
        self.stopping: Callable[[], bool] = lambda: False
        """Whether the server has begun to stop (the app sets it to the router's flag)."""

    async def open(self) -> None:
        """Nothing to prepare: the router writes the scoreboard."""

    async def close(self) -> None:
        """Nothing to release."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The page, the JSON or the health answer."""
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": ALLOW})
        rest = strip_query(request.raw_path)[len(self.prefix) :]
        if rest == "/health" or (self.health_only and rest in ("", "/")):
            headers = {"Cache-Control": "no-store"}
            if self.stopping():
                return web.Response(status=503, text="stopping\n", headers=headers)
            return web.Response(text="ok\n", headers=headers)
        if self.health_only or rest not in ("", "/", "/json"):
            return web.Response(status=404, text="404 Not Found\n")
        state = await offload(report, self.folder)
        headers = {"Cache-Control": "no-store"}
        if rest == "/json":
            body = json.dumps(state, indent=1) + "\n"
            return web.Response(text=body, content_type="application/json", headers=headers)
        return web.Response(
            text=page(state, self.prefix + "/json"),
            content_type="text/html",
            charset="utf-8",
            headers=headers,
        )
