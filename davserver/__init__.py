"""davserver: a WebDAV and CalDAV server with pluggable storage."""

__version__ = "0.1.0"
