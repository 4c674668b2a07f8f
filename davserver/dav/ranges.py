"""Byte ranges (RFC 9110 §14)."""

from __future__ import annotations

MAX_RANGES = 64


class Unsatisfiable(Exception):
    """No requested range overlaps the representation: answer 416."""


def parse(header: str, size: int) -> list[tuple[int, int]] | None:
    """The (start, end inclusive) ranges a Range header asks of ``size`` bytes.

    None means "ignore the header and send everything": a unit other than bytes, a
    syntax error, or more ranges than are worth serving.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    wanted: list[tuple[int, int]] = []
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    for part in parts:
        first, dash, last = part.strip().partition("-")
        if not dash:
            return None
        try:
            if first:
                start = int(first)
                end = int(last) if last else max(start, size - 1)
                if start < 0 or end < start:
                    return None
            else:
                suffix = int(last)
                if suffix < 0:
                    return None
                if suffix == 0:
                    continue
                start, end = max(size - suffix, 0), size - 1
        except ValueError:
            return None
        if start < size:
            wanted.append((start, min(end, size - 1)))
    if not wanted:
        raise Unsatisfiable
    return wanted
