"""What the services' HTTP APIs answer while something they need is away: a 503 with
``Retry-After``, logged as a warning, never a 500 with a traceback.

Every write is one transaction (the outbox), so an outage changed nothing and the caller may
simply try again. The handlers are registered per exception class, so Starlette's
ExceptionMiddleware answers and is done; a handler for ``Exception`` runs in
ServerErrorMiddleware instead, which answers and then raises again for the server to log (every
PostgreSQL restart was an "Exception in ASGI application" ERROR with a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

from .db import TRANSIENT_ERRORS, is_transient

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = ("A service this request needs is unavailable for a moment; nothing was changed. "
               "Try again shortly.")


def answer_outages(app: Any, render: Callable[[Any], Any], log: logging.Logger) -> None:
    """Register on a FastAPI/Starlette ``app``: ``render(request)`` makes the 503 response in
    the API's own error shape (this adds ``Retry-After``)."""

    async def unavailable(request: Any, exc: Exception) -> Any:
        if not is_transient(exc):  # an OSError or KafkaError that is not the network's
            raise exc
        log.warning("%s %s: unavailable (%r)", request.method, request.url.path, exc)
        response = render(request)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    for cls in (*TRANSIENT_ERRORS, OSError, KafkaError):
        app.add_exception_handler(cls, unavailable)
