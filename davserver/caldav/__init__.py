"""CalDAV (RFC 4791) on top of the WebDAV layer: principals, calendar homes, calendars,
validated calendar objects, and the calendar REPORTs."""
