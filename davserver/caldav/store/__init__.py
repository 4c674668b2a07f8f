"""The calendar store of the CalDAV feature: the CalDAV URL layout over any storage
backend (layout.py), the calendar index (index.py, items.py) and the body cache."""
