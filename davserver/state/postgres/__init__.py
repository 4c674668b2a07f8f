"""The shared state in PostgreSQL, for several hosts: the database and its schema
(database.py, schema.py), generations over LISTEN/NOTIFY, the change sequence, named
locks. The lock store is davserver/locks/pg_store.py, the calendar index
davserver/caldav/store/pg_index.py."""
