"""WebDAV's core (RFC 4918 class 1) as a feature: the methods every DAV tree answers and
the live properties every resource has."""

from __future__ import annotations

from collections.abc import Mapping

from . import copymove, propfind, proppatch, read, write
from .features import BASE_PROPERTIES, Feature, Handler, LiveProperty


class WebDav(Feature):
    """OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH."""

    compliance = ("1",)

    def methods(self) -> Mapping[str, Handler]:
        """The class 1 methods."""
        return {
            "OPTIONS": read.options,
            "GET": read.get,
            "HEAD": read.get,
            "PUT": write.put,
            "DELETE": write.delete,
            "MKCOL": write.mkcol,
            "COPY": copymove.copy_or_move,
            "MOVE": copymove.copy_or_move,
            "PROPFIND": propfind.propfind,
            "PROPPATCH": proppatch.proppatch,
        }

    def properties(self) -> Mapping[str, LiveProperty]:
        """RFC 4918's live properties, and RFC 4331's quota."""
        return BASE_PROPERTIES
