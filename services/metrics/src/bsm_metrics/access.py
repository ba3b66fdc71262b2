"""Who may read the metrics service: a service credential on every request but ``/health``.

The record (timelines with every event of an order), the projections (response times, quota
use, report statistics) and the Prometheus page (per-seller F1 gauges) are the platform's
internal data: people reach them only through the gateway, which checks their role and
presents the service token (``BSM_METRICS_TOKEN``) on their behalf; operators' tools (``bsm
dispute``) present it too. ``/metrics`` also opens with a scrape token of its own
(``BSM_METRICS_SCRAPE_TOKEN``, optional), so a Prometheus server need not hold the credential
that reads timelines. ``/health`` stays open for liveness probes (it says nothing but "ok").

The check is an ASGI middleware, so it holds for every path — the read API, ``/metrics``,
``/openapi.json``, ``/docs`` and unknown paths alike — before routing or any parameter is
looked at: a caller without the credential learns nothing, not even which paths exist.
Tokens are compared in constant time (:func:`hmac.compare_digest` over their SHA-256
digests, so neither the content nor the length of the expected token shows in the timing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

#: Paths that need no credential.
OPEN_PATHS = frozenset({"/health"})
#: Paths the scrape token opens (besides the service token).
SCRAPE_PATHS = frozenset({"/metrics"})


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1), or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def matches(presented: str | None, accepted: Iterable[str]) -> bool:
    """Whether ``presented`` is one of ``accepted`` — every candidate compared, in constant
    time, so the answer's timing does not say which (or how much of one) matched."""
    if presented is None:
        return False
    given = _digest(presented)
    found = False
    for token in accepted:
        found |= hmac.compare_digest(given, _digest(token))
    return found


def allowed(path: str, presented: str | None, *, service_token: str,
            scrape_token: str | None) -> bool:
    """The access decision for one request."""
    if path in OPEN_PATHS:
        return True
    accepted = [service_token]
    if scrape_token and path in SCRAPE_PATHS:
        accepted.append(scrape_token)
    return matches(presented, accepted)


REFUSAL = json.dumps({
    "error": "unauthenticated",
    "detail": "The metrics service answers services only: send `Authorization: Bearer "
              "<BSM_METRICS_TOKEN>` (people read the record and the figures through the "
              "gateway, `GET /v1/orders/{id}/timeline`, with their own token).",
}).encode()


class RequireServiceToken:
    """ASGI middleware: ``401`` (JSON, ``WWW-Authenticate: Bearer``) without the credential."""

    def __init__(self, app: ASGIApp, *, service_token: str,
                 scrape_token: str | None = None) -> None:
        if not service_token:
            raise ValueError("the metrics service needs a service token (BSM_METRICS_TOKEN)")
        self.app, self.service_token, self.scrape_token = app, service_token, scrape_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                       if k == b"authorization"), None)
        if allowed(scope.get("path", ""), bearer(header), service_token=self.service_token,
                   scrape_token=self.scrape_token):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(REFUSAL)).encode()),
            (b"www-authenticate", b'Bearer realm="bsm-metrics"'),
        ]})
        await send({"type": "http.response.body", "body": REFUSAL})
