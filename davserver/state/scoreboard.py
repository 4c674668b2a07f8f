"""The scoreboard: what every worker process is doing, readable by any of them.

As Apache's mod_status: each process maps a file of its own in ``state_dir/status/``
(named by its pid) and writes into it, at the start and end of each request, one slot:
when the request began, its method, path, client and request id. That is a few memory
writes, no system call. The status page reads every live process's file (:func:`read`).
A reader may see a slot being rewritten; the page is a snapshot and takes that chance,
as Apache's does.

The folder also holds ``server.json``: when the server (the master, or the one process)
started, and its pid.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_FILE = "server.json"
# started, requests answered, connections open
_HEAD = struct.Struct("<dQQ")
# began (0: free), method, client, request id, path
_SLOT = struct.Struct("<d16s48s24s256s")


@dataclass(frozen=True, slots=True)
class Busy:
    """A request under way."""

    method: str
    path: str
    client: str
    request_id: str
    began: float


@dataclass(frozen=True, slots=True)
class Worker:
    """What one process's file says."""

    pid: int
    started: float
    requests: int
    connections: int
    busy: list[Busy]


def prepare(folder: Path) -> None:
    """Empty the folder and note the server's start (once, before any worker starts)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    info = {"started": time.time(), "pid": os.getpid()}
    (folder / SERVER_FILE).write_text(json.dumps(info), encoding="utf-8")


class Scoreboard:
    """This process's file: ``slots`` requests at most are shown at once (more are served,
    just not shown)."""

    def __init__(self, folder: Path, slots: int) -> None:
        self.folder = folder
        self.slots = slots
        self._map: mmap.mmap | None = None
        self._free: list[int] = []
        self._requests = 0
        self._connections = 0
        self._path: Path | None = None

    def open(self) -> None:
        """Create and map this process's file (blocking: at start, or off the loop)."""
        if not (self.folder / SERVER_FILE).exists():
            prepare(self.folder)
        self._path = self.folder / str(os.getpid())
        size = _HEAD.size + self.slots * _SLOT.size
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        _HEAD.pack_into(self._map, 0, time.time(), 0, 0)
        self._free = list(range(self.slots - 1, -1, -1))

    def close(self) -> None:
        """Remove this process's file: it serves no more."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    def begin(self, method: str, path: str, client: str, request_id: str) -> int:
        """Show a request as under way; the slot to pass to :meth:`end` (-1: not shown)."""
        if self._map is None or not self._free:
            return -1
        slot = self._free.pop()
        _SLOT.pack_into(
            self._map, _HEAD.size + slot * _SLOT.size, time.time(),
            method.encode("latin-1", "replace")[:16], client.encode()[:48],
            request_id.encode()[:24], path.encode("utf-8", "replace")[:256],
        )  # fmt: skip
        return slot

    def end(self, slot: int) -> None:
        """The request of ``slot`` was answered."""
        if self._map is None:
            return
        self._requests += 1
        struct.pack_into("<Q", self._map, 8, self._requests)
        if slot >= 0:
            struct.pack_into("<d", self._map, _HEAD.size + slot * _SLOT.size, 0.0)
            self._free.append(slot)

    def connection(self, delta: int) -> None:
        """A connection opened (+1) or closed (-1)."""
        if self._map is None:
            return
        self._connections += delta
        struct.pack_into("<Q", self._map, 16, self._connections)


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("utf-8", "replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(folder: Path) -> tuple[dict[str, float], list[Worker]]:
    """The server's start file and every live process's state (blocking). Files of
    processes that are gone (killed before they could remove theirs) are removed."""
    try:
        server = json.loads((folder / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        server = {}
    workers = []
    for entry in sorted(os.listdir(folder)) if folder.is_dir() else []:
        if not entry.isdigit():
            continue
        pid = int(entry)
        path = folder / entry
        if not _alive(pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if len(data) < _HEAD.size:
            continue
        started, requests, connections = _HEAD.unpack_from(data, 0)
        busy = []
        for offset in range(_HEAD.size, len(data) - _SLOT.size + 1, _SLOT.size):
            began, method, client, rid, path_bytes = _SLOT.unpack_from(data, offset)
            if began:
                text = _text(method), _text(path_bytes), _text(client), _text(rid)
                busy.append(Busy(*text, began))
        workers.append(Worker(pid, started, requests, connections, busy))
    return server, workers
