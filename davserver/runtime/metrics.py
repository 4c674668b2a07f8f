"""Prometheus metrics of the server, shared by all its worker processes.

Metrics are on only when the configuration has a ``metrics`` mount: :func:`enable` is
called once per server, in the process that forks the workers (or in the one process),
with a folder of the state folder. prometheus_client's multiprocess mode then keeps each
process's values in memory-mapped files there, and a scrape, answered by any worker, adds
up the files of every worker (``render``). Counters of a worker that died stay counted;
its live gauges leave with it (``process_died``, called by the master).

Code that counts something asks for :data:`active` and does nothing while it is None, so
a server without a metrics mount pays one attribute read per event.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
# Methods counted by name; any other (a client may send any token) counts as OTHER, so a
# hostile client cannot make a label value per request.
METHODS = frozenset(
    {"GET", "HEAD", "OPTIONS", "PUT", "POST", "DELETE", "PATCH", "PROPFIND", "PROPPATCH",
     "MKCOL", "MKCALENDAR", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT"}
)  # fmt: skip
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_RequestChildren = tuple[Counter, Histogram, Counter, Counter]
Rows = list[tuple[tuple[str, ...], float]]
"""A probe's values: (label values, value) pairs."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A gauge whose values are read when a scrape comes (state every worker shares, such
    as the locks held): ``read`` returns (label values, value) pairs."""

    name: str
    help: str
    labels: tuple[str, ...]
    read: Callable[[], Awaitable[Rows]]


class Metrics:
    """The metric objects of one server process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # A registry of our own: the metrics are written to files, never collected from it.
        registry = CollectorRegistry(auto_describe=True)
        mount = ("mount",)
        self.requests = Counter(
            "davserver_requests", "Requests answered, by mount, method and status class",
            ("mount", "method", "status"), registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "davserver_request_duration_seconds", "Time to answer a request, by mount and method",
            ("mount", "method"), buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.bytes_in = Counter(
            "davserver_request_body_bytes", "Request body bytes read, by mount", mount,
            registry=registry,
        )  # fmt: skip
        self.bytes_out = Counter(
            "davserver_response_body_bytes", "Response body bytes sent, by mount", mount,
            registry=registry,
        )  # fmt: skip
        self.connections = Gauge(
            "davserver_connections_open", "Client connections open",
            multiprocess_mode="livesum", registry=registry,
        )  # fmt: skip
        self.git_commits = Counter(
            "davserver_git_commits", "Commits made by git mounts", registry=registry
        )
        self.git_repacks = Counter(
            "davserver_git_repacks", "Runs that packed a git mount's loose objects and packs",
            registry=registry,
        )  # fmt: skip
        self.storage_faults = Counter(
            "davserver_storage_faults",
            "Requests a store could not serve (full disk, state folder unusable...), by mount "
            "and kind",
            ("mount", "kind"), registry=registry,
        )  # fmt: skip
        self.push_attempts = Counter(
            "davserver_push_attempts",
            "WebDAV-Push delivery attempts, by outcome (delivered, gone, retry, failed)",
            ("outcome",), registry=registry,
        )  # fmt: skip
        self.upstream_failures = Counter(
            "davserver_upstream_failures",
            "FastCGI and ASGI applications that failed a request (502, 504, 500), by mount "
            "and kind",
            ("mount", "kind"), registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[str, str, str], _RequestChildren] = {}

    def request_done(
        self, mount: str, method: str, status: int, seconds: float, read: int, sent: int
    ) -> None:
        """Count one answered request."""
        if method not in METHODS:
            method = "OTHER"
        key = (mount, method, f"{status // 100}xx")
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(*key),
                self.latency.labels(mount, method),
                self.bytes_in.labels(mount),
                self.bytes_out.labels(mount),
            )
            self._children[key] = children
        count, latency, bytes_in, bytes_out = children
        count.inc()
        latency.observe(seconds)
        if read:
            bytes_in.inc(read)
        if sent:
            bytes_out.inc(sent)


active: Metrics | None = None
"""The metrics of this process, once enabled."""


def upstream_failed(mount: str, kind: str) -> None:
    """Count a request a FastCGI or ASGI application failed (when metrics are on)."""
    if active is not None:
        active.upstream_failures.labels(mount or "/", kind).inc()


def push_attempted(outcome: str) -> None:
    """Count a WebDAV-Push delivery attempt and its outcome (when metrics are on)."""
    if active is not None:
        active.push_attempts.labels(outcome).inc()


def prepare(folder: Path) -> None:
    """Empty ``folder`` and make it the place of the metric files: what the previous run
    counted is gone (counters start at zero with the server, as Prometheus expects).
    Called once, before the workers fork."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(folder)
    # prometheus_client picks the kind of value when it is imported, from the same
    # variable; it may have been imported before the variable was set.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def enable(folder: Path) -> Metrics:
    """Start counting in this process (a worker, or the one process), into ``folder``
    (which ``prepare`` made)."""
    global active
    if os.environ.get(ENV) != str(folder):
        prepare(folder)
    active = Metrics(folder)
    return active


def disable() -> None:
    """Stop counting in this process (its metrics mount closed)."""
    global active
    active = None


def process_died(folder: Path, pid: int) -> None:
    """Drop the live gauges of a worker that exited (the master calls this)."""
    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


class _Probed(Collector):
    def __init__(self, samples: list[tuple[Probe, Rows]]) -> None:
        self.samples = samples

    def collect(self) -> list[GaugeMetricFamily]:
        families = []
        for probe, rows in self.samples:
            family = GaugeMetricFamily(probe.name, probe.help, labels=probe.labels)
            for labels, value in rows:
                family.add_metric(list(labels), value)
            families.append(family)
        return families


def render_sync(folder: Path, probed: list[tuple[Probe, Rows]]) -> bytes:
    """The text exposition of every worker's metrics and the probes' values (reads the
    files: run it off the event loop)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    registry.register(_Probed(probed))
    return prometheus_client.generate_latest(registry)
