"""What every layer may use to leave the event loop: worker threads (threads.py) and
SQLite on a thread of its own (sqlite.py). No HTTP, no XML, no storage."""
