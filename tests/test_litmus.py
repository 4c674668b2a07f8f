"""The litmus WebDAV compliance suites give exactly the results in litmus/expected-*.txt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "litmus" / "run.py"


@pytest.mark.parametrize("backend", ["filesystem"])
def test_litmus_matches_expected(backend: str) -> None:
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--backend", backend],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "results as expected" in done.stdout
