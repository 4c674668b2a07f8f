"""HTTPS: the server's TLS context, from ``[server] tls_cert`` and ``tls_key``."""

from __future__ import annotations

import ssl
from pathlib import Path

from .config import ConfigError


def server_context(cert: Path, key: Path, source: str) -> ssl.SSLContext:
    """A server-side TLS context with Python's modern defaults (TLS 1.2 at least, forward-
    secret AEAD ciphers, no compression or renegotiation) serving ``cert`` with ``key``.

    Reads both files, so call it off the event loop. A file that is not a PEM certificate
    chain or key, or a key that does not match, is a ``ConfigError`` naming ``source``.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ConfigError(
            f"{source}: server.tls_cert: cannot use {cert} with the key {key}: {reason}"
        ) from exc
    return context
