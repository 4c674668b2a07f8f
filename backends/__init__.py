"""Storage backends for davserver's DAV mounts (installed as ``davserver.backends``)."""
