"""Logging for ``theraclaim serve``: one line per request from the guard, nothing that can hold PHI.

uvicorn's access log is off (it prints query strings, which carry patient ids); exceptions are
logged with their type and frames but never their message, which may quote a resource.
"""

from __future__ import annotations

import logging
import traceback
from types import TracebackType
from typing import Any

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class PhiSafeFormatter(logging.Formatter):
    """Tracebacks show where (file, line, function) and the exception's type, never its text."""

    def formatException(self, ei: ExcInfo) -> str:
        kind, _error, tb = ei
        frames = traceback.extract_tb(tb)
        where = "".join(f'\n  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames)
        name = kind.__name__ if kind is not None else "Exception"
        return f"Traceback (most recent call last):{where}\n{name} (message withheld: it may quote patient data)"

    def formatMessage(self, record: logging.LogRecord) -> str:
        # uvicorn's error logger interpolates exception text into some messages; keep only the template
        if record.name.startswith("uvicorn") and record.levelno >= logging.WARNING and record.args:
            record.message = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        return super().formatMessage(record)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and theraclaim: stderr, safe formatter, no access log."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "safe": {
                "()": PhiSafeFormatter,
                "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            }
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "safe", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "theraclaim": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
