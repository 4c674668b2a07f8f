"""The iCalendar domain: instance spans, summaries, filters, expansion and partial
retrieval of calendar objects. Bytes and icalendar objects in and out; it imports
neither the storage nor HTTP nor XML."""
