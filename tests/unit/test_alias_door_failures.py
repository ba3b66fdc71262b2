"""The mail door's temporary failures: 451 either way; an outage is a warning, a bug an
ERROR with its traceback."""

import logging

import asyncpg

from bsm_alias.door import _temporary_failure


def test_an_outage_at_the_door_is_a_451_and_a_warning_without_a_traceback(caplog):
    with caplog.at_level(logging.INFO, logger="bsm.alias.door"):
        try:
            raise asyncpg.exceptions.CannotConnectNowError("recovering")
        except Exception as exc:  # noqa: BLE001
            reply = _temporary_failure("door lookup failed", exc)
    assert reply.startswith("451 4.3.0")
    [entry] = caplog.records
    assert entry.levelno == logging.WARNING and entry.exc_info is None
    assert "CannotConnectNowError" in entry.getMessage()


def test_a_bug_at_the_door_is_a_451_and_an_error_with_its_traceback(caplog, expect):
    expect.error("door could not record the mail", logger="bsm.alias.door")
    with caplog.at_level(logging.INFO, logger="bsm.alias.door"):
        try:
            raise KeyError("x")
        except Exception as exc:  # noqa: BLE001
            reply = _temporary_failure("door could not record the mail", exc)
    assert reply.startswith("451 4.3.0")
    [entry] = caplog.records
    assert entry.levelno == logging.ERROR and entry.exc_info is not None
