"""``davserver serve`` as a user runs it: embedded default, config files, signals."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import ServerProcess, free_port

import davserver
from davserver.cpu import interrupts_now


def request(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_embedded_default_creates_data_and_prints_its_url(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process()
    assert (tmp_path / "data").is_dir()
    assert request("PUT", f"{server.url}/hello.txt", b"hi")[0] == 201
    assert (tmp_path / "data" / "hello.txt").read_bytes() == b"hi"
    assert server.stop() == 0
    out = server.log()
    assert f"http://127.0.0.1:{server.port}/" in out


def test_config_file_mounts_side_by_side(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[[mounts]]\npath = "/a"\ntype = "webdav"\nroot = "one"\n'
        '[[mounts]]\npath = "/a/b"\ntype = "webdav"\nroot = "two"\n'
    )
    server = server_process("--config", str(conf))
    assert request("PUT", f"{server.url}/a/x.txt", b"1")[0] == 201
    assert request("PUT", f"{server.url}/a/b/y.txt", b"2")[0] == 201
    assert (tmp_path / "one" / "x.txt").read_bytes() == b"1"
    assert (tmp_path / "two" / "y.txt").read_bytes() == b"2"
    assert request("GET", f"{server.url}/elsewhere")[0] == 404


def test_root_override(tmp_path: Path, server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("--root", str(tmp_path / "other"))
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201
    assert (tmp_path / "other" / "f").read_bytes() == b"x"


def test_bad_config_exits_before_listening(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[server]\nport = "eighty"\n[[mounts]]\npath="/"\ntype="webdav"\nroot="d"\n')
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "davserver", "serve", "--config", str(conf), "--port", str(port)],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{conf}: server.port: must be of type int" in done.stderr
    assert not (tmp_path / "d").exists()


def test_sigterm_lets_an_in_flight_upload_finish(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process()
    results: list[int] = []

    def slow_body():  # a chunked upload that takes about a second
        for _ in range(10):
            time.sleep(0.1)
            yield b"x" * 1000

    def upload() -> None:
        req = urllib.request.Request(f"{server.url}/slow.bin", data=slow_body(), method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            results.append(resp.status)

    worker = threading.Thread(target=upload)
    worker.start()
    time.sleep(0.4)
    server.proc.terminate()
    worker.join(timeout=30)
    assert server.proc.wait(timeout=30) == 0
    assert results == [201]
    assert (tmp_path / "data" / "slow.bin").read_bytes() == b"x" * 10_000


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m davserver ARGS`` to its end (a start that fails, or --version)."""
    return subprocess.run(
        [sys.executable, "-m", "davserver", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_a_missing_htpasswd_file_stops_the_start(tmp_path: Path) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text('[auth]\nhtpasswd = "users"\n[[mounts]]\npath="/"\ntype="webdav"\nroot="d"\n')
    done = run(tmp_path, "serve", "--config", str(conf), "--port", str(free_port()))
    assert done.returncode == 2
    assert f"{conf}: auth.htpasswd: {tmp_path / 'users'} does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.toml"]


def test_an_unknown_log_level_is_a_usage_error(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", "--log-level", "LOUD", "--port", str(free_port()))
    assert done.returncode == 2
    assert "usage: davserver serve" in done.stderr
    assert "argument --log-level: invalid choice: 'LOUD'" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_log_level_in_lower_case_is_accepted(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--log-level", "warning")
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201


def test_root_naming_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a folder")
    done = run(tmp_path, "serve", "--root", "file", "--port", str(free_port()))
    assert done.returncode == 2
    assert "usage: davserver serve" in done.stderr
    assert "argument --root: file exists and is not a folder" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert (tmp_path / "file").read_bytes() == b"not a folder"


def test_a_configured_root_naming_a_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a folder")
    conf = tmp_path / "conf.toml"
    conf.write_text('[[mounts]]\npath="/"\ntype="webdav"\nroot="file"\n')
    done = run(tmp_path, "serve", "--config", str(conf), "--port", str(free_port()))
    assert done.returncode == 2
    assert f"{conf}: mounts[0].root: {tmp_path / 'file'} is not a folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.toml", "file"]


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = run(tmp_path, "--version")
    assert done.returncode == 0
    assert done.stdout == f"davserver {importlib.metadata.version('davserver')}\n"
    assert importlib.metadata.version("davserver") == davserver.__version__


def cpus_allowed(pid: int, thread: int | None = None) -> str:
    """The CPUs a process (or one of its threads) may run on, as /proc shows them (e.g.
    '0-1' or '1')."""
    status = Path(f"/proc/{pid}/status" if thread is None else f"/proc/{pid}/task/{thread}/status")
    for line in status.read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def test_pin_cpu_keeps_the_process_on_one_cpu(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--workers", "1")  # pin_cpu = true by default
    allowed = cpus_allowed(server.proc.pid)
    assert allowed.isdigit()
    assert int(allowed) in os.sched_getaffinity(0)
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201  # serves as before


def quietest(allowed: set[int]) -> set[int]:
    """The CPUs of ``allowed`` that have handled the fewest device interrupts so far."""
    counts = interrupts_now()
    least = min(counts.get(cpu, 0) for cpu in allowed)
    return {cpu for cpu in allowed if counts.get(cpu, 0) == least}


def test_a_single_process_keeps_off_the_cpu_the_devices_interrupt(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """Of the CPUs it may use, the process takes one that handled the fewest device
    interrupts (a disk's all go to one CPU on many virtual machines)."""
    allowed = os.sched_getaffinity(0)
    before = quietest(allowed)
    server = server_process("--workers", "1")
    if len(allowed) < 2:
        assert cpus_allowed(server.proc.pid) == cpus_allowed(os.getpid())
        return
    after = quietest(allowed)
    if not before & after:
        return  # the order changed while it started: either choice was right
    pinned = int(cpus_allowed(server.proc.pid))
    assert pinned in before | after
    assert f"running on CPU {pinned} (pin_cpu)" in server.log()
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201


def test_pin_cpu_leaves_the_processes_it_starts_every_cpu(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """A CGI script (as a FastCGI application, or the packing of a git repository) runs
    on the CPUs the server could use before it kept to one, not on the server's."""
    (tmp_path / "cgi").mkdir()
    script = tmp_path / "cgi" / "cpus"
    script.write_text(
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n"
        "cat >/dev/null\n"  # its stdin ends once the server has spread it
        "grep Cpus_allowed_list /proc/self/status\n"
    )
    script.chmod(0o755)
    conf = tmp_path / "conf.toml"
    conf.write_text(
        '[server]\nworkers = 1\n[[mounts]]\npath = "/cgi-bin"\ntype = "cgi"\nroot = "cgi"\n'
    )
    server = server_process("--config", str(conf))
    mine = cpus_allowed(os.getpid())
    if len(os.sched_getaffinity(0)) > 1:
        assert cpus_allowed(server.proc.pid) != mine  # the server itself keeps to one
    status, body = request("GET", f"{server.url}/cgi-bin/cpus")
    assert status == 200
    assert body.decode().split(":", 1)[1].strip() == mine


def closer_helpers(pid: int) -> list[int]:
    """The children of ``pid`` that are its closer helper (davserver/runtime/closer.py)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(kid) for kid in kids
        if b"davserver.runtime.closer" in Path(f"/proc/{kid}/cmdline").read_bytes()
    ]  # fmt: skip


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for its parent has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in "ZX"


def test_a_pinned_process_frees_replaced_files_in_a_helper(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """On more than one CPU, the single pinned process hands the files its PUTs replace to
    a helper on the CPUs it left, which also makes the files they write ahead; the writes
    are what they would be without it, and the helper ends with the server."""
    server = server_process("--workers", "1")
    helpers = closer_helpers(server.proc.pid)
    if len(os.sched_getaffinity(0)) < 2:
        assert helpers == []  # nothing pinned, nothing to spare
        return
    assert len(helpers) == 1
    pinned = int(cpus_allowed(server.proc.pid))  # the helper keeps off the serving CPU
    assert os.sched_getaffinity(helpers[0]) == os.sched_getaffinity(0) - {pinned}
    assert "replaced files are freed by helper process" in server.log()
    for n in range(50):
        assert request("PUT", f"{server.url}/f", b"version %d" % n)[0] == (201 if n == 0 else 204)
    assert request("GET", f"{server.url}/f") == (200, b"version 49")
    # No temporary file left; the helper's stock folder (runtime/tempstock.py) holds
    # no names, only the unnamed files it made ahead, which the server holds open.
    assert sorted(os.listdir(tmp_path / "data")) == [".davtmp-stock", "f"]
    assert os.listdir(tmp_path / "data" / ".davtmp-stock") == []
    stock = str(tmp_path / "data" / ".davtmp-stock")
    assert any(
        os.readlink(f"/proc/{server.proc.pid}/fd/{fd}").startswith(stock + "/#")
        for fd in os.listdir(f"/proc/{server.proc.pid}/fd")
    )
    assert (tmp_path / "data" / "f").read_bytes() == b"version 49"
    assert server.stop() == 0
    assert gone(helpers[0])


def test_the_closer_helper_ends_when_the_server_is_killed(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        return  # no helper: see the test above
    server = server_process("--workers", "1")
    (helper,) = closer_helpers(server.proc.pid)
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201
    assert request("PUT", f"{server.url}/f", b"y")[0] == 204
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 10
    while not gone(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(helper)


def test_pin_cpu_false_leaves_the_placement_alone(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_text(
        "[server]\npin_cpu = false\nworkers = 1\n"
        '[[mounts]]\npath = "/"\ntype = "webdav"\nroot = "data"\n'
    )
    server = server_process("--config", str(conf))
    assert cpus_allowed(server.proc.pid) == cpus_allowed(os.getpid())
    assert closer_helpers(server.proc.pid) == []  # its threads may use every CPU
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201


def test_pin_cpu_spreads_the_workers_over_the_cpus(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    server = server_process("--workers", "2")
    deadline = time.monotonic() + 20
    kids: list[str] = []
    while time.monotonic() < deadline and len(kids) < 2:
        kids = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        time.sleep(0.1)
    assert len(kids) == 2
    pinned = sorted(cpus_allowed(int(pid)) for pid in kids)
    want = sorted(str(cpus[slot % len(cpus)]) for slot in range(2)) if len(cpus) > 1 else None
    assert pinned == (want or [cpus_allowed(server.proc.pid)] * 2)
    assert cpus_allowed(server.proc.pid) == cpus_allowed(os.getpid())  # the master is not
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201


def serving(url: str, stop: threading.Event) -> None:
    """Keep the server busy until ``stop``: PROPFINDs of a folder of many files, one at a
    time (milliseconds of the server's CPU each, next to nothing of this process's)."""
    body = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'
    while not stop.is_set():
        req = urllib.request.Request(url, data=body, method="PROPFIND", headers={"Depth": "1"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()


def test_pin_cpu_moves_off_a_cpu_other_programs_take_while_it_serves(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """Idle, the process stays where it is whoever takes its CPU; serving, it moves to an
    idle one within seconds, every thread and its helper's CPUs along."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to move between")
    (tmp_path / "data" / "many").mkdir(parents=True)
    for n in range(500):
        (tmp_path / "data" / "many" / f"f{n}").write_bytes(b"x")
    server = server_process("--workers", "1")
    first = int(cpus_allowed(server.proc.pid))
    (helper,) = closer_helpers(server.proc.pid)
    busy = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {first}),
    )
    stop = threading.Event()
    client = threading.Thread(target=serving, args=(f"{server.url}/many/", stop))
    try:
        time.sleep(5)  # idle: others take its CPU, and it stays
        assert cpus_allowed(server.proc.pid) == str(first)
        client.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and cpus_allowed(server.proc.pid) == str(first):
            time.sleep(0.2)
    finally:
        stop.set()
        busy.kill()
        busy.wait()
        if client.is_alive():
            client.join()
    now = cpus_allowed(server.proc.pid)
    assert now.isdigit() and int(now) != first and int(now) in os.sched_getaffinity(0)
    # Every thread went along, not the main thread alone; the helper left the new CPU.
    threads = [int(t.name) for t in Path(f"/proc/{server.proc.pid}/task").iterdir()]
    assert {cpus_allowed(server.proc.pid, t) for t in threads} == {now}
    assert os.sched_getaffinity(helper) == os.sched_getaffinity(0) - {int(now)}
    assert f"moving to CPU {now}: other programs took" in server.log()
    assert request("PUT", f"{server.url}/f", b"x")[0] == 201  # serves as before
