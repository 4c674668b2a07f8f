"""The path locks between worker processes: the kernel's deadlock detection, which takes
two threads of one process for one waiter, must not fail a write (it answered 500
"Resource deadlock avoided" to two of 17,000 PUTs with two workers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Worker A, a process of its own as the server's workers are: its main thread holds the
# low stripe while another thread of it waits for the high one, which worker B holds while
# waiting for the low one. The kernel sees A and B waiting for each other.
WORKER_A = """
import subprocess, sys, threading, time
from davserver.backends.pathlocks import PathLocks

lock_file = sys.argv[1]
locks = PathLocks()
locks.open(lock_file)
paths = sorted(["a", *(f"b{n}" for n in range(50))], key=locks._stripe)
low, high = paths[0], paths[-1]
worker_b = subprocess.Popen(
    [sys.executable, "-c",
     "import fcntl, os, sys\\n"
     f"fd = os.open({lock_file!r}, os.O_RDWR)\\n"
     f"fcntl.lockf(fd, fcntl.LOCK_EX, 1, {locks._stripe(high)})\\n"
     "print('high', flush=True)\\n"
     "sys.stdin.readline()\\n"
     f"fcntl.lockf(fd, fcntl.LOCK_EX, 1, {locks._stripe(low)})\\n"
     "print('both', flush=True)\\n"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
assert worker_b.stdout.readline() == "high\\n"

def hold_high():
    try:
        with locks.hold(high):
            print("got high", flush=True)
    except OSError as exc:
        print("refused", exc, flush=True)

with locks.hold(low):
    worker_b.stdin.write("go\\n")
    worker_b.stdin.flush()
    time.sleep(0.5)
    waiter = threading.Thread(target=hold_high)
    waiter.start()
    time.sleep(0.5)
waiter.join(10)
print(worker_b.stdout.readline().strip(), worker_b.wait(10), flush=True)
"""


def test_a_false_deadlock_between_workers_is_waited_out(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WORKER_A, str(tmp_path / "paths.lock")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["got high", "both 0"], done.stdout
