"""Errors as JSON, never a stack trace: ``{"error", "detail", ...}`` on the bsm API, and the
Selling Partner API's ``{"errors": [{"code", "message", "details"}]}`` under ``/messaging/``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bsm_shared.runtime.http import UNAVAILABLE, answer_outages

log = logging.getLogger("bsm.gateway")

SP_PREFIX = "/messaging/"
_SP_CODES = {400: "InvalidInput", 401: "Unauthorized", 403: "Unauthorized", 404: "NotFound",
             409: "Conflict", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
             422: "InvalidInput", 501: "NotImplemented", 503: "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra

    def render(self, request: Request) -> JSONResponse:
        return render(request, self.status, self.code, self.detail, **self.extra)


def render(request: Request, status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if request.url.path.startswith(SP_PREFIX):
        # The SP-API shape, with bsm's code (rule and reason) kept in `details`; a refusal on
        # the rule library's word is one error per violation, each naming rule, code and span.
        sp_code = _SP_CODES.get(status, "InternalFailure")
        if extra.get("violations"):
            errors = [{"code": sp_code,
                       "message": " ".join(filter(None, [v.get("detail"), v.get("remedy")])),
                       "details": f"{v['code']} (rule {v['rule']}) at {span_text(v.get('span'))}"}
                      for v in extra["violations"]]
        else:
            errors = [{"code": sp_code, "message": detail, "details": code + (
                f" (rule {extra['rule']})" if extra.get("rule") else "")}]
        return JSONResponse(status_code=status, headers=headers, content={"errors": errors})
    return JSONResponse(status_code=status, headers=headers,
                        content={"error": code, "detail": detail, **extra})


def span_text(span: dict[str, Any] | None) -> str:
    """Where a violation is, in one phrase: ``text[12:24]``, ``attachments[0] (a.exe)``,
    ``html <img>``, ``message``."""
    if not span:
        return "message"
    where = str(span.get("field") or "message")
    if span.get("start") is not None:
        end = span.get("end")
        where += f"[{span['start']}:{'' if end is None else end}]"
    if span.get("element"):
        where += f" ({span['element']})"
    return where


class RequestTooLarge(StarletteHTTPException):
    """A request body over the door's limit (:mod:`.door`): the declared ``Content-Length``
    (``size``), or ``None`` when a body without one was cut off as it passed the limit.
    An ``HTTPException``, so FastAPI passes it on when it is raised while reading a body
    (any other error there becomes a bare ``400``)."""

    def __init__(self, limit: int, size: int | None) -> None:
        super().__init__(413, "Content Too Large")
        self.limit, self.size = limit, size

    def render(self, request: Request) -> JSONResponse:
        said = f"{self.size:,} bytes" if self.size is not None else "larger than that"
        return render(request, 413, "request_too_large",
                      f"The request body is {said}; this endpoint reads at most "
                      f"{self.limit:,} bytes.", limit=self.limit, size=self.size)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.render(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(x) for x in e["loc"] if x != "body"), "problem": e["msg"]}
            for e in exc.errors()
        ]
        return render(request, 422, "invalid_request",
                      "The request does not have the expected shape.", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, RequestTooLarge):
            return exc.render(request)
        code = {400: "bad_request", 404: "not_found",
                405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return render(request, exc.status_code, code, str(exc.detail))

    def unavailable(request: Request) -> JSONResponse:
        return render(request, 503, "unavailable", UNAVAILABLE)

    answer_outages(app, unavailable, log)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, 500, "internal_error",
                      "Something went wrong on our side; nothing was changed. Try again.")
