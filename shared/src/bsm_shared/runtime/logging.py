"""Logging: one JSON object a line, and personal data kept out.

The parties' real addresses must never reach a log line. Code never logs them on purpose; the
redaction filter here is the second line of defence: any e-mail address in a log record that
is not at the marketplace mail domain (an alias, which is not personal data) is replaced.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


class RedactEmails(logging.Filter):
    def __init__(self, mail_domain: str) -> None:
        super().__init__()
        self.suffix = "@" + mail_domain.lower()

    def redact(self, text: str) -> str:
        return _EMAIL.sub(
            lambda m: m.group(0) if m.group(0).lower().endswith(self.suffix) else "<redacted>",
            text,
        )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: RedactEmails | None = None) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("event_id", "event_type", "message_id", "topic"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            text = self.formatException(record.exc_info)
            # Exception texts quote values (a database error, a parser's input): redact them too.
            entry["exc"] = self._redact.redact(text) if self._redact else text
        return json.dumps(entry, ensure_ascii=False)


class LibraryRetries(logging.Filter):
    """aiokafka logs ERROR for conditions it recovers from by itself (a coordinator not there
    yet at start, a heartbeat missed during a rebalance, a broker that went away and came
    back). They are WARNINGs here: an ERROR line in our logs means something a person must look
    at (a dead letter, a row Kafka refused, a retry that keeps failing), and the test runs fail on
    any ERROR nobody declared. What the client could not recover from reaches our code as an
    exception, and our code logs that."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.name.startswith("aiokafka"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(service: str, level: str, mail_domain: str) -> logging.Logger:
    """Configure the root logger for a service process (called by ``__main__`` only)."""
    redact = RedactEmails(mail_domain)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    handler.addFilter(redact)
    handler.addFilter(LibraryRetries())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"bsm.{service}")
