"""scripts/bootstrap.sh's ensure_venv: pip runs when the installed package was not built
from the sources as they are (or lacks the extras asked for), and only then. A stand-in
.venv/bin/python records the calls, so no network and no real install are needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh"
# Records its arguments; `-m pip` fails when the file "pip-fails" exists.
FAKE_PYTHON = """#!/bin/sh
echo "$*" >>calls.log
if [ "$1" = "-m" ] && [ -e pip-fails ]; then echo "ERROR: no network" >&2; exit 1; fi
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (no git) with a .venv whose python is the stand-in."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(BOOTSTRAP, tmp_path / "scripts" / "bootstrap.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'davserver'\n")
    (tmp_path / "README.md").write_text("readme\n")
    for package in ("davserver", "backends"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    (bin_dir / "davserver").write_text("#!/bin/sh\n")
    (bin_dir / "davserver").chmod(0o755)
    return tmp_path


def ensure(project: Path, extras: str = "") -> tuple[list[str], str]:
    """Run ``ensure_venv EXTRAS``; the pip calls it made and its stderr."""
    log = project / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . scripts/bootstrap.sh; ensure_venv "{extras}"'],
        cwd=project, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    calls = log.read_text().splitlines() if log.exists() else []
    return [c for c in calls if c.startswith("-m pip")], done.stderr


def test_pip_runs_once_and_again_only_when_the_sources_change(project: Path) -> None:
    assert len(ensure(project)[0]) == 1
    assert ensure(project)[0] == []
    (project / "davserver" / "__pycache__").mkdir()
    (project / "davserver" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert ensure(project)[0] == []  # byte code is not a source
    (project / "davserver" / "__init__.py").write_text("# edited\n")
    assert len(ensure(project)[0]) == 1
    assert ensure(project)[0] == []
    (project / "backends" / "__init__.py").rename(project / "backends" / "renamed.py")
    assert len(ensure(project)[0]) == 1
    (project / "pyproject.toml").write_text("[project]\nname = 'davserver'\nversion = '2'\n")
    assert len(ensure(project)[0]) == 1
    assert ensure(project)[0] == []


def test_extras_are_installed_when_missing_and_cover_a_plain_install(project: Path) -> None:
    assert ensure(project)[0] == ["-m pip install -q --disable-pip-version-check ."]
    assert ensure(project, "[test]")[0] == ["-m pip install -q --disable-pip-version-check .[test]"]
    assert ensure(project)[0] == []  # what scripts/test installed serves scripts/serve
    assert ensure(project, "[test]")[0] == []


def test_a_failed_pip_keeps_the_old_install_and_is_retried(project: Path) -> None:
    assert len(ensure(project)[0]) == 1
    (project / "davserver" / "__init__.py").write_text("# edited\n")
    (project / "pip-fails").touch()
    calls, stderr = ensure(project)
    assert len(calls) == 1
    assert "ERROR: no network" in stderr
    assert "pip failed; .venv keeps the davserver installed before" in stderr
    (project / "pip-fails").unlink()
    assert len(ensure(project)[0]) == 1  # tried again: the stamp was not written
    assert ensure(project)[0] == []
