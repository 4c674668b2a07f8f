"""WebDAV write locks: the manager (index and rules) and the stores that persist them."""
