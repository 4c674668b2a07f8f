"""What a packager looks at: the licence file agrees with pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def test_license_file_matches_the_project_metadata() -> None:
    declared = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "MIT"}
    text = (TOP / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
