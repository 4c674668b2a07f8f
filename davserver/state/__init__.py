"""What the server keeps beside the stores, in the state folder: the change sequence of
each mount (changelog.py), locks (davserver.locks), the calendar index (davserver.caldav).
Each is an interface with its implementations, so several processes can share them."""
