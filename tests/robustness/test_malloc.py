"""The allocator settings the server applies at start (davserver/malloc.py)."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from davserver import malloc


def test_glibc_takes_the_settings() -> None:
    """On glibc (Debian, where CI runs) both mallopt calls succeed."""
    assert ctypes.util.find_library("c")
    assert malloc.tune() is True


def test_a_c_library_without_mallopt_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:
        def __init__(self, _name: str) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert malloc.tune() is False
