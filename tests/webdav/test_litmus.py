"""The litmus WebDAV compliance suites give exactly the results in litmus/expected-*.txt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LITMUS = Path(__file__).resolve().parents[2] / "litmus"
RUNNER = LITMUS / "run.py"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("backend", ["filesystem", "git"])
def test_litmus_matches_expected(backend: str, workers: int) -> None:
    """The same results with one process and with two worker processes."""
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--backend", backend, "--workers", str(workers)],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "results as expected" in done.stdout


def test_every_backend_expects_the_same_results() -> None:
    """What passes on the filesystem backend must pass on the git backend too."""

    def results(backend: str) -> list[str]:
        text = (LITMUS / f"expected-{backend}.txt").read_text()
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    assert results("git") == results("filesystem")
