"""WebDAV-Push (the bitfireAT draft): clients subscribe to a collection with a Web Push
endpoint, and each change of the collection (made through the server or found on disk or
in git) sends them an encrypted message (RFC 8291) signed with the server's VAPID key
(RFC 8292). See docs/push.md."""
