"""The WebDAV protocol layer: parse a request, check it, act through the storage interface."""
