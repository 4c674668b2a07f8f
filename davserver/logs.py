"""Where log lines go and how they look (``[log]``): text or JSON lines, on stderr or in
a file that SIGUSR1 reopens (for logrotate), the request id on every line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from .config import LogConfig
from .runtime import requestid

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: [%(request_id)s] %(message)s"
TEXT_FORMAT_WORKERS = (
    "%(asctime)s %(levelname)s %(name)s[%(process)d]: [%(request_id)s] %(message)s"
)
ACCESS_LOGGER = "davserver.access"
_reopenable: list[ReopenedFileHandler] = []


class ReopenedFileHandler(logging.FileHandler):
    """A log file that :func:`reopen` opens again by name (after logrotate moved it)."""

    def reopen(self) -> None:
        """Close the file and open the one now at the same path."""
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, request id, message, and the
    fields of an access line (``record.access``) or a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The line of ``record``."""
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", "-"),
        }
        access = getattr(record, "access", None)
        if access is not None:
            out.update(access)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _AccessText(logging.Formatter):
    """The access log file's lines: the combined format alone, nothing before it."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def _handler(file: Any) -> logging.Handler:
    if file is None:
        return logging.StreamHandler(sys.stderr)
    handler = ReopenedFileHandler(file, encoding="utf-8")
    _reopenable.append(handler)
    return handler


def configure(level: str, config: LogConfig, workers: bool) -> None:
    """Set up the root logger (and the access logger, when it has a file of its own)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    _reopenable.clear()
    ids = requestid.Filter()
    main = _handler(config.file)
    main.addFilter(ids)
    if config.format == "json":
        main.setFormatter(JsonFormatter())
    else:
        main.setFormatter(logging.Formatter(TEXT_FORMAT_WORKERS if workers else TEXT_FORMAT))
    root.addHandler(main)
    root.setLevel(level)
    access = logging.getLogger(ACCESS_LOGGER)
    for old in list(access.handlers):
        access.removeHandler(old)
        old.close()
    access.propagate = config.access_file is None
    if config.access_file is not None:
        own = _handler(config.access_file)
        own.addFilter(ids)
        own.setFormatter(JsonFormatter() if config.format == "json" else _AccessText())
        access.addHandler(own)


def reopen() -> None:
    """SIGUSR1: open the log files again (logrotate has moved them away)."""
    for handler in _reopenable:
        handler.reopen()
