"""Closing the descriptors of replaced files in a helper process, on another CPU.

A PUT over an existing file holds the replaced file open until its rename is done
(backends/filesystem_change.py says why), and closing that last descriptor is when the
kernel frees the file: it drops its pages, frees its blocks and, on a mount with
``discard``, waits for the device to discard them (milliseconds, during which a worker
thread of the server's small pool is taken). A process pinned to one CPU (``[server]
pin_cpu``, davserver/cpu.py) pays that CPU time on its serving CPU while the other CPUs
sit idle. A single pinned process therefore starts this helper: it hands each such
descriptor over a Unix socket (SCM_RIGHTS) and closes its own copy, which is then not
the last one and costs next to nothing; the helper, left to the kernel on every CPU the
server could use but the one it serves from (and moved off the one it moves to), does
the freeing, on threads that may wait for the device side by side. Measured on 2 CPUs
(wrk, 16 connections, PUT of 4 KiB over 8 files, this build and the one before side by
side on the same CPU, alternating rounds; docs/benchmarks.md): 1.18x and 1.09x the PUTs
per second, 12 % and 4 % less server CPU per PUT. With as many worker processes as CPUs
no CPU sits idle: a helper per worker gave 0.92x, so only the single pinned process
uses one.

The same helper makes files ahead for the server's writes (tempstock.py), which it
asks for over the same socket.

The hand-over never waits: when the helper lags behind (its socket's buffer is full) or
has gone, the server closes the descriptor itself, as it would without a helper. The
helper ends when the server's end of the socket closes, whatever ends the server.
"""

from __future__ import annotations

import array
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from . import affinity, tempstock

_THREADS = 8
"""The helper's closing threads: at 3,000 PUTs a second and 2 ms of waiting for the
device per close, six closes are under way at a time."""
_LOOK = 0.002
"""Seconds between two looks at the socket while the server is busy (see _receive)."""
_QUIET_LOOKS = 50
"""Looks that found nothing before the helper waits on the socket again (0.1 s)."""
_FD = array.array("i")

_to_helper: socket.socket | None = None
_helper: subprocess.Popen[bytes] | None = None


def start(cpu: int) -> int:
    """Start the helper for this process; its PID. Call it once, from the process that
    will hand descriptors over, after it pinned itself to ``cpu``: the helper gets every
    other CPU the process could use before."""
    global _to_helper, _helper
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        # Its stderr is the server's (a traceback would show there); it holds neither
        # the server's input nor its output, which a reader waits on to its end.
        _helper = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno())], pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    affinity.spread(_helper.pid, but=cpu)
    ours.setblocking(False)  # Python 3.11's send_fds drops its flags (MSG_DONTWAIT)
    _to_helper = ours
    tempstock.attach(ours)
    return _helper.pid


def keep_off(cpu: int) -> None:
    """The server now serves from ``cpu`` (davserver/cpu.py moved it): the helper keeps
    to the other CPUs."""
    if _helper is not None:
        affinity.spread(_helper.pid, but=cpu)


def stop() -> None:
    """End the helper (it closes what it was handed first) and wait for it."""
    global _to_helper, _helper
    tempstock.attach(None)
    if _to_helper is not None:
        _to_helper.close()
        _to_helper = None
    if _helper is not None:
        _helper.wait()
        _helper = None


def close(fd: int) -> None:
    """Close ``fd``, the last descriptor of a file this process replaced: the helper
    frees the file when there is one to take it, else this call does. Errors of the
    close are ignored, like those of a close after a rename."""
    to_helper = _to_helper
    if to_helper is not None:
        # Full or gone: the close below frees the file here.
        with contextlib.suppress(OSError):
            socket.send_fds(to_helper, [b"c"], [fd])
    with contextlib.suppress(OSError):
        os.close(fd)


def _serve(fd: int) -> None:
    """The helper: close every descriptor it is handed, and make the files asked for, on
    several threads (a close may wait milliseconds for the device's discard), until its
    socket ends."""
    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process
    # group: the server decides when it ends, and its end ends this loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with socket.socket(fileno=fd) as sock:
        work: queue.SimpleQueue[tuple[bytes, list[int]] | None] = queue.SimpleQueue()
        doers = [threading.Thread(target=_do, args=(sock, work)) for _ in range(_THREADS)]
        for thread in doers:
            thread.start()
        try:
            _receive(sock, work)
        finally:
            for _ in doers:
                work.put(None)
            for thread in doers:
                thread.join()


def _receive(sock: socket.socket, work: queue.SimpleQueue[tuple[bytes, list[int]] | None]) -> None:
    """Take the server's messages until its end closes, queueing each for the doers: a
    handed descriptor to close, a request for files to make.

    While the server is busy this thread does not wait on the socket: it looks every
    ``_LOOK`` seconds. A send that finds a thread waiting wakes it, and waking a thread on
    another CPU interrupts that CPU, in the sender's time: 6 % of a small PUT's CPU when
    every replaced file woke a closing thread. Once nothing came for ``_QUIET_LOOKS``
    looks, it waits on the socket again (an idle server costs the helper nothing)."""
    empty = _QUIET_LOOKS
    while True:
        flags = 0 if empty >= _QUIET_LOOKS else socket.MSG_DONTWAIT
        try:
            # recvmsg, not socket.recv_fds: Python 3.11's drops its flags.
            message, ancillary, _flags, _address = sock.recvmsg(
                tempstock.MESSAGE, socket.CMSG_SPACE(_FD.itemsize), flags
            )
        except BlockingIOError:
            empty += 1
            time.sleep(_LOOK)
            continue
        except ConnectionResetError:  # the server's end closed with batches it never read
            return
        if not message:  # every message has a kind: this is the end
            return
        empty = 0
        handed = array.array("i")
        for level, kind, data in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                handed.frombytes(data[: len(data) - len(data) % _FD.itemsize])
        work.put((message, handed.tolist()))


def _do(sock: socket.socket, work: queue.SimpleQueue[tuple[bytes, list[int]] | None]) -> None:
    """A doer: close what was handed (which may wait for the device), make what is asked."""
    while (job := work.get()) is not None:
        message, handed = job
        tempstock.close_all(handed)
        if message[:1] == tempstock.MAKE:
            tempstock.make(sock, message[1:])


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
