"""CalDAV scheduling (RFC 6638) as a feature of a ``caldav`` tree: each user's inbox and
outbox, implicit scheduling driven by the tree's change events, free-busy through the
outbox, and iMIP mail for attendees elsewhere."""
