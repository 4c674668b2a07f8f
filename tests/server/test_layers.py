"""The import rules of docs/architecture.md ("Layers"), as import-linter contracts in
pyproject.toml, checked over the package as it is imported (backends inside, as
davserver.backends); and each contract shown to catch what it forbids, on a copy of the
package with one bad import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import davserver.backends
import pytest

import davserver

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = 6


def package_copy(where: Path) -> Path:
    """A copy of the davserver package with its backends inside (a checkout keeps them
    beside it, an installed package inside); the folder to put on the import path."""
    ignore = shutil.ignore_patterns("__pycache__")
    package = where / "davserver"
    shutil.copytree(Path(davserver.__file__).parent, package, ignore=ignore)
    if not (package / "backends").is_dir():
        shutil.copytree(
            Path(davserver.backends.__file__).parent, package / "backends", ignore=ignore
        )
    return where


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the package found in ``path``."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache"],
        cwd=path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_package_keeps_every_import_rule(tmp_path: Path) -> None:
    done = lint(package_copy(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in done.stdout


# One import each rule forbids: (module, the line added to it, the import as reported).
BREAKS = [
    pytest.param("runtime/threads.py", "import davserver.dav.paths",
                 "davserver.runtime.threads -> davserver.dav.paths", id="layers: runtime above dav"),
    pytest.param("ical/spans.py", "import davserver.events",
                 "davserver.ical.spans -> davserver.events", id="layers: domain above events"),
    pytest.param("config.py", "import davserver.mounts.static",
                 "davserver.config -> davserver.mounts.static", id="layers: config above mounts"),
    pytest.param("dav/write.py", "from davserver.dav import core",
                 "davserver.dav.write -> davserver.dav.core", id="a handler imports a feature"),
    pytest.param("dav/paths.py", "import davserver.dav.features",
                 "davserver.dav.paths -> davserver.dav.features", id="a helper imports the registry"),
    pytest.param("caldav/store/layout.py", "import davserver.backends.git",
                 "davserver.caldav.store.layout -> davserver.backends.git",
                 id="protocol code imports a concrete backend"),
    pytest.param("backends/base.py", "import aiohttp",
                 "davserver.backends.base -> aiohttp", id="a backend imports aiohttp"),
    pytest.param("backends/git_layout.py", "import lxml.etree",
                 "davserver.backends.git_layout -> lxml", id="a backend imports lxml"),
    pytest.param("backends/disk.py", "import icalendar",
                 "davserver.backends.disk -> icalendar", id="a backend imports icalendar"),
    pytest.param("vcard/parse.py", "import lxml.etree",
                 "davserver.vcard.parse -> lxml", id="the domain imports lxml"),
    pytest.param("ical/scan.py", "import davserver.backends.base",
                 "davserver.ical.scan -> davserver.backends.base", id="the domain imports the storage"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "line", "reported"), BREAKS)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, reported: str
) -> None:
    path = package_copy(tmp_path)
    source = path / "davserver" / module
    source.write_text(source.read_text() + f"\n{line}\n")
    done = lint(path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ", 0 broken." not in done.stdout
    assert reported in done.stdout, done.stdout
