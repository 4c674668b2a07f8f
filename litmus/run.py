#!/usr/bin/env python3
"""Run the litmus WebDAV compliance suites against davserver and compare with the
expected results kept beside this script.

    python litmus/run.py [--backend filesystem|git] [--suites "basic copymove"] [--update]

It starts davserver (from the Python running this script) on a free loopback port with a
fresh store, runs litmus in a temporary folder, prints every result, and exits 1 when any
result differs from ``expected-<backend>.txt`` (``--update`` rewrites that file instead).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = "basic copymove props locks http"
_SUITE = re.compile(r"-> running `(\w+)':")
_RESULT = re.compile(
    r"(\d+)\. (\w+)\.*\s*(?:WARNING:[^\n]*\n\s*\.*\s*)?(pass|FAIL|SKIPPED)(?: \(([^)]*)\))?"
)
_SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """Wait until the server accepts connections; fail if it exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"davserver exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("davserver did not start listening")


def config_for(backend: str, work: Path, port: int, workers: int = 1) -> str:
    """The TOML configuration of a one-mount server with a fresh store."""
    store = {
        "filesystem": f'root = "{work / "store"}"',
        "git": f'repo = "{work / "store.git"}"',
    }[backend]
    return (
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nstate_dir = "{work / "state"}"\n'
        f"access_log = false\nworkers = {workers}\n\n"
        f'[[mounts]]\npath = "/"\ntype = "webdav"\nbackend = "{backend}"\n{store}\n'
    )


def parse(output: str) -> list[str]:
    """One line per litmus step: ``suite number name status``."""
    lines: list[str] = []
    chunks = _SUITE.split(output)
    for suite, text in zip(chunks[1::2], chunks[2::2], strict=True):
        for number, name, status, _detail in _RESULT.findall(text):
            lines.append(f"{suite} {int(number)} {name} {status}")
    return lines


def run(backend: str, suites: str, workers: int = 1) -> tuple[str, list[str]]:
    """Start a server, run litmus against it, return its output and parsed results."""
    litmus = shutil.which("litmus")
    if litmus is None:
        raise SystemExit("litmus is not installed (Debian package `litmus`)")
    with tempfile.TemporaryDirectory(prefix="davserver-litmus-") as tmp:
        work = Path(tmp)
        port = free_port()
        config = work / "davserver.toml"
        config.write_text(config_for(backend, work, port, workers))
        log = (work / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "davserver", "serve", "--config", str(config),
             "--log-level", "WARNING"],
            cwd=work, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_listening(port, proc)
            done = subprocess.run(
                [litmus, "-k", f"http://127.0.0.1:{port}/"],
                cwd=work, env={**os.environ, "TESTS": suites},
                capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        server_log = (work / "server.log").read_text(errors="replace")
        if "Traceback" in server_log:
            print(server_log, file=sys.stderr)
            raise SystemExit("davserver logged a traceback during litmus")
        return done.stdout, parse(done.stdout)


def main() -> int:
    """Run, print, compare (or update); the exit code says whether all matched."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="filesystem", choices=["filesystem", "git"])
    ap.add_argument("--suites", default=SUITES)
    ap.add_argument("--workers", type=int, default=1, help="worker processes of the server")
    ap.add_argument("--update", action="store_true", help="rewrite the expected results")
    args = ap.parse_args()
    output, results = run(args.backend, args.suites, args.workers)
    for m in _SUMMARY.finditer(output):
        print(f"litmus {m[1]}: {m[2]} run, {m[3]} passed, {m[4]} failed")
    expected_file = HERE / f"expected-{args.backend}.txt"
    if args.update:
        header = (
            f"# litmus results expected on the {args.backend} backend: suite, step, name, status.\n"
            "# Regenerate with `python litmus/run.py --update` after a deliberate change.\n"
        )
        expected_file.write_text(header + "\n".join(results) + "\n")
        print(f"wrote {expected_file}")
        return 0
    expected = [
        line.strip()
        for line in expected_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    wanted_suites = set(args.suites.split())
    expected = [line for line in expected if line.split()[0] in wanted_suites]
    if results == expected:
        print(f"litmus ({args.backend}): all {len(results)} results as expected")
        return 0
    print(output)
    missing = [line for line in expected if line not in results]
    extra = [line for line in results if line not in expected]
    for line in missing:
        print(f"expected but not seen: {line}")
    for line in extra:
        print(f"seen but not expected: {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
