import logging

from bsm_shared.runtime.logging import RedactEmails


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)


def test_real_addresses_are_redacted_from_log_lines_but_aliases_are_kept():
    rec = record("from %s to %s", "ana.b@gmail.com", "k2j4h5g6f7d8s9a0@marketplace.example")
    RedactEmails("marketplace.example").filter(rec)
    assert rec.getMessage() == "from <redacted> to k2j4h5g6f7d8s9a0@marketplace.example"


def test_addresses_in_exception_texts_are_redacted_too():
    import json
    import sys

    from bsm_shared.runtime.logging import JsonFormatter

    redact = RedactEmails("marketplace.example")
    try:
        raise ValueError("duplicate key (email)=(ana.b@gmail.com)")
    except ValueError:
        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "insert failed", None,
                                sys.exc_info())
    line = json.loads(JsonFormatter(redact).format(rec))
    assert "ana.b@gmail.com" not in line["exc"] and "<redacted>" in line["exc"]
