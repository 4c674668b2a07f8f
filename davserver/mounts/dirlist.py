"""The HTML listing of a static folder: folders first, then files, by name."""

from __future__ import annotations

import html
import os
import stat
from dataclasses import dataclass
from urllib.parse import quote

from davserver.dav.props import http_date
from davserver.dav.visible import STYLE, plain, visible

from .files import within

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:.2em 1em;text-align:left}td.n{text-align:right}" + STYLE
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One member of a listed folder."""

    name: str
    is_dir: bool
    size: int
    mtime: float


def entries_sync(root: str, full: str) -> list[Entry]:
    """The visible members of the folder ``full``: no dot files, no symlink leading out of
    ``root``, nothing that cannot be stat'ed."""
    out = []
    with os.scandir(full) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink() and not within(root, os.path.realpath(entry.path)):
                    continue
                st = entry.stat()
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            out.append(Entry(entry.name, is_dir, 0 if is_dir else st.st_size, st.st_mtime))
    out.sort(key=lambda e: (not e.is_dir, e.name))
    return out


def _size(entry: Entry) -> str:
    if entry.is_dir:
        return "-"
    size = float(entry.size)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def page(url_path: str, entries: list[Entry], at_top: bool) -> bytes:
    """The listing page of the folder at ``url_path`` (decoded, ending with ``/``)."""
    rows = [
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of {plain(url_path)}'
        f"</title><style>{_STYLE}</style></head><body><h1>Index of {visible(url_path)}</h1>\n"
        "<table><tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    ]
    if not at_top:
        rows.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>\n')
    for e in entries:
        name = e.name + ("/" if e.is_dir else "")
        # "./" so that a name with a colon is never read as a URL scheme.
        link = "./" + html.escape(quote(name.encode("utf-8", "surrogateescape"), safe="/@-._~"))
        rows.append(
            f'<tr><td><a href="{link}">{visible(name)}</a></td>'
            f'<td class="n">{_size(e)}</td><td>{http_date(e.mtime)}</td></tr>\n'
        )
    rows.append("</table></body></html>\n")
    return "".join(rows).encode("utf-8")
