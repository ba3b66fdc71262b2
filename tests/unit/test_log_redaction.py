import logging

from bsm_shared.runtime.logging import RedactEmails


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)


def test_real_addresses_are_redacted_from_log_lines_but_aliases_are_kept():
    rec = record("from %s to %s", "ana.b@gmail.com", "k2j4h5g6f7d8s9a0@marketplace.example")
    RedactEmails("marketplace.example").filter(rec)
    assert rec.getMessage() == "from <redacted> to k2j4h5g6f7d8s9a0@marketplace.example"
