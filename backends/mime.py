"""The media type of a stored file, from its name (both backends answer the same)."""

from __future__ import annotations

import functools
import mimetypes

mimetypes.init()  # reads the system's MIME tables now, not on the event loop later


def content_type(path: str) -> str:
    """The media type of the file at ``path``, by its extension."""
    return _type_of_extension(path.rpartition("/")[2].rpartition(".")[2])


@functools.lru_cache(maxsize=1024)
def _type_of_extension(ext: str) -> str:
    return mimetypes.guess_type("x." + ext, strict=False)[0] or "application/octet-stream"
