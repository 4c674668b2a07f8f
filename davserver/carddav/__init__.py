"""CardDAV (RFC 6352) beside CalDAV in a ``caldav`` mount: address-book homes, address
books and validated vCards over the mount's store, sharing its principals, discovery,
index and sync tokens."""
