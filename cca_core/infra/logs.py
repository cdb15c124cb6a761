"""Process-wide logging: plain text or one JSON object per line (``daemon.log_format``), with
secrets redacted from every record (message, arguments and traceback) whatever logged it."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from cca_core.infra.redact import Redactor, secret_env_values, settings_secrets
from cca_core.settings import Settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats a record as text, then redacts the whole line (message and traceback)."""

    def __init__(self, redactor: Redactor | None = None, fmt: str | None = TEXT_FORMAT) -> None:
        super().__init__(fmt)
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


class JsonFormatter(RedactingFormatter):
    """One JSON object per record, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.process,
            "message": self.redactor.text(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.redactor.text(self.formatException(record.exc_info))
        return json.dumps(entry)


def make_formatter(log_format: str, secrets: Iterable[str] = ()) -> logging.Formatter:
    """The formatter of ``log_format`` that redacts ``secrets``, the credentials in this
    process's environment and every secret-looking substring."""
    redactor = Redactor([*secrets, *secret_env_values(os.environ)])
    return JsonFormatter(redactor) if log_format == "json" else RedactingFormatter(redactor)


def configure_logging(level: str, log_format: str, secrets: Iterable[str] = ()) -> None:
    """Send every log record to stderr in the chosen format, replacing earlier handlers;
    ``secrets`` (see ``cca_core.infra.redact.settings_secrets``) never appear in a line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
    logging.getLogger("httpx").setLevel(logging.WARNING)


def configure_logging_for(settings: Settings) -> None:
    """:func:`configure_logging` as ``settings`` say, redacting the secrets they hold."""
    configure_logging(settings.daemon.log_level, settings.daemon.log_format,
                      settings_secrets(settings))
