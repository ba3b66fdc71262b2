"""What the HTTP door refuses before any route's code runs: text no stage can store, and
request bodies larger than any valid request.

* **U+0000 and lone surrogates** (:func:`bsm_shared.contract.limits.unstorable`): PostgreSQL
  cannot store the one and UTF-8 cannot encode the other, and the contract refuses events that
  hold either. The door refuses them wherever a request carries text — ``422 unstorable_text``
  naming the field and the character — so nothing half-done is published or stored:

  - in the **query** (every route, documented or not, static files included):
    :class:`Door`, an ASGI middleware that runs before routing;
  - in **path parameters and bodies** (JSON, forms, upload file names): :func:`refuse_unstorable`,
    a dependency of the whole application, so it runs after routing (it can name the path
    parameter) and before the route's own parameters are validated. It reads the body FastAPI
    has already read and parsed (Starlette caches it on the request), so nothing is read twice.

  A NUL in the path of a route that takes no parameter matches no route (``404``); a raw NUL
  or CR/LF byte in the request line never reaches the application: uvicorn answers ``400``.
* **Sizes**: :class:`Door` refuses a body whose ``Content-Length`` is over the limit before
  reading any of it, and a body without one (chunked) as soon as it passes the limit:
  :data:`MAX_REQUEST_BYTES` for every route, the upload's own limit plus
  :data:`MULTIPART_OVERHEAD_BYTES` for ``POST /v1/attachments``; ``413 request_too_large``
  naming the limit and the size, in the API's error shape.

  Written here rather than with FastAPI's ``max_body_size``: Starlette's body limit answers a
  body declared too large with its own plain-text ``413``, replacing whatever the application
  answered, so the refusal could not name the limit, nor take the SP-API's error shape.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams, UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bsm_shared.contract.limits import MAX_BODY_BYTES, find_unstorable, unstorable

from .errors import ApiError, RequestTooLarge

#: The largest request body the door reads for any route but the upload. The largest valid
#: request is a message whose text and HTML fill ``MAX_BODY_BYTES``; JSON may spell each byte
#: as a six-character escape (``\u0001``), and the other fields (subject, ids, up to
#: ``MAX_ATTACHMENTS`` attachment references) fit in 64 KiB.
MAX_REQUEST_BYTES = 6 * MAX_BODY_BYTES + 64 * 1024

#: What a multipart upload adds to its file: boundaries and the part's headers.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

CODE = "unstorable_text"


def unstorable_error(field: str, reason: str) -> ApiError:
    """The ``422`` for a field holding text no stage can store."""
    return ApiError(422, CODE, f"{field} contains {reason}, which cannot be stored or sent; "
                    "remove it and send again.",
                    problems=[{"field": field, "problem": f"contains {reason}"}])


class Door:
    """ASGI middleware, before routing, on every request: a query parameter (name or value)
    holding U+0000 or a lone surrogate is refused with ``422``; a body larger than the
    route's limit with ``413`` — from its ``Content-Length`` before any of it is read, or,
    without one, as soon as what was read passes the limit.

    ``larger_bodies`` maps the paths that take more than :data:`MAX_REQUEST_BYTES` (the
    upload) to their limit."""

    def __init__(self, app: ASGIApp, larger_bodies: dict[str, int]) -> None:
        self.app, self.larger_bodies = app, larger_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limit, read = self.larger_bodies.get(scope["path"], MAX_REQUEST_BYTES), 0
        declared = request.headers.get("content-length", "")
        refusal: ApiError | RequestTooLarge | None = self.unstorable_query(scope)
        if refusal is None and declared.isdigit() and int(declared) > limit:
            refusal = RequestTooLarge(limit, int(declared))
        if refusal is not None:
            await refusal.render(request)(scope, receive, send)
            return

        started = False

        async def receive_within_limit() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise RequestTooLarge(limit, None)  # rendered by the error handlers
            return message

        async def send_watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_watched)
        except RequestTooLarge as exc:  # raised where no handler ran (outside a route)
            if started:
                raise
            await exc.render(request)(scope, receive, send)

    @staticmethod
    def unstorable_query(scope: Scope) -> ApiError | None:
        for name, value in QueryParams(scope.get("query_string", b"")).multi_items():
            reason = unstorable(name) or unstorable(value)
            if reason is not None:
                return unstorable_error(f"query.{name}", reason)
        return None


async def refuse_unstorable(request: Request) -> None:
    """Dependency of every route: path parameters and the request body (as FastAPI parsed it)
    may hold no U+0000 and no lone surrogate."""
    found = find_unstorable(dict(request.path_params), "path")
    if found is None:
        found = await _unstorable_in_body(request)
    if found is not None:
        raise unstorable_error(*found)


async def _unstorable_in_body(request: Request) -> tuple[str, str] | None:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            body: Any = await request.json()  # parsed once: FastAPI's parse, cached
        except ValueError:
            return None  # not JSON (or empty): the route's validation says so
        return find_unstorable(body)
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()  # the form FastAPI parsed, cached
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                where, text = f"{name}.filename", value.filename or ""
            else:
                where, text = name, value
            reason = unstorable(name) or unstorable(text)
            if reason is not None:
                return where, reason
    return None
