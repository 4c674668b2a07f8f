"""Accounts: the htpasswd file of users and password hashes."""
