"""The gateway's door to the metrics service: the dispute timeline (G1), a seller's response
times (F1), daily quota usage (F2) and report statistics (F3), which ``routers.records``
proxies to people; and the seller's quota as a fact for the rule library (C7 in contact options and
lint, :meth:`MetricsClient.quota_facts`).

The metrics service answers services only (the service credential ``BSM_METRICS_TOKEN``,
which this client presents as a bearer token; ``bsm_metrics.access``), so the browser never
talks to it: the web message center stays same-origin under its strict CSP, and who may see
what is decided by the gateway (:mod:`.access`). A metrics outage is a
``503`` in the API's error shape, never a stack trace or a hanging request (every call has a
timeout).
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bsm_shared.record_api import Quota, ResponseTimes  # noqa: F401 - a route's model

from .errors import ApiError

log = logging.getLogger("bsm.gateway")
# httpx logs every request at INFO; one line per proxied read is noise in the gateway's log.
logging.getLogger("httpx").setLevel(logging.WARNING)

Window = Literal["7d", "30d", "90d"]


class MetricsClientSettings(BaseSettings):
    """Where the metrics service is (the key ``.stack/env`` writes) and how long to wait."""

    model_config = SettingsConfigDict(env_prefix="BSM_GATEWAY_", extra="ignore",
                                      populate_by_name=True)

    metrics_url: str = Field(
        default="http://127.0.0.1:18081",
        validation_alias=AliasChoices("BSM_METRICS_URL", "bsm_metrics_url", "metrics_url"),
        description="Base URL of the metrics service's read API.")
    metrics_timeout: float = Field(default=5.0, gt=0, le=60,
                                   description="Seconds to wait for the metrics service.")
    metrics_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("BSM_METRICS_TOKEN", "bsm_metrics_token", "metrics_token"),
        description="The metrics service's service credential, presented on every call (the "
        "same `BSM_METRICS_TOKEN` the metrics service is given). Without it the record "
        "endpoints answer 503.")


class MetricsClient:
    """A small async client of the metrics read API (httpx, one connection pool).

    ``transport`` lets a test put the real metrics app in the same process
    (``httpx.ASGITransport``) instead of a network hop."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url, self.timeout, self.transport = base_url.rstrip("/"), timeout, transport
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_environment(cls) -> "MetricsClient":
        s = MetricsClientSettings()
        token = s.metrics_token.get_secret_value() if s.metrics_token else None
        return cls(s.metrics_url, token=token, timeout=s.metrics_timeout)

    def _client(self) -> httpx.AsyncClient:
        # Built on first use: nothing connects when the app is composed.
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout,
                                           transport=self.transport, headers=self._headers)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        unavailable = ApiError(503, "metrics_unavailable",
                               "The record (metrics service) cannot be reached just now; "
                               "nothing is lost. Try again in a moment.")
        try:
            response = await self._client().get(path, params=params)
        except httpx.HTTPError as exc:  # refused, timed out, reset: all mean "not now"
            log.warning("metrics service unreachable: %s", type(exc).__name__)
            raise unavailable from None
        if response.status_code >= 500:
            log.warning("metrics service answered %s on %s", response.status_code, path)
            raise unavailable
        if response.status_code in (401, 403):
            # Our own configuration, not the caller's fault: say it in the log, answer 503.
            log.warning("metrics service refused the gateway's credential (%s): check that "
                        "BSM_METRICS_TOKEN is the metrics service's", response.status_code)
            raise unavailable
        try:
            body = response.json()
        except ValueError:
            log.warning("metrics service answered non-JSON on %s", path)
            raise unavailable from None
        if response.status_code in (404, 422):
            # The metrics service's own error shape is the gateway's ({"error", "detail"}).
            raise ApiError(response.status_code, str(body.get("error", "not_found")),
                           str(body.get("detail", "Not found in the record.")))
        if response.status_code != 200 or not isinstance(body, dict):
            log.warning("metrics service answered %s on %s", response.status_code, path)
            raise unavailable
        return body

    async def timeline(self, order_id: str, as_of: datetime | None) -> dict[str, Any]:
        params = {"as_of": as_of.isoformat()} if as_of else {}
        return await self._get(f"/v1/orders/{quote(order_id, safe='')}/timeline", params)

    async def response_times(self, seller_id: str, window: str,
                             as_of: datetime | None) -> dict[str, Any]:
        params = {"window": window, **({"as_of": as_of.isoformat()} if as_of else {})}
        return await self._get(f"/v1/sellers/{quote(seller_id, safe='')}/response-times",
                               params)

    async def quota(self, seller_id: str, day: date | None) -> dict[str, Any]:
        params = {"day": day.isoformat()} if day else {}
        return await self._get(f"/v1/sellers/{quote(seller_id, safe='')}/quota", params)

    async def report_stats(self, window: str, as_of: datetime | None) -> dict[str, Any]:
        params = {"window": window, **({"as_of": as_of.isoformat()} if as_of else {})}
        return await self._get("/v1/reports/stats", params)

    async def quota_facts(self, seller_id: str, day: date) -> Quota | None:
        """The seller's limit and approved count of ``day`` (F2, the one count and formula of
        C7) for the rule library; ``None`` when the record cannot say just now (then C7 is
        not judged at the door, and the answer says so — policy still decides)."""
        try:
            return Quota.model_validate(await self.quota(seller_id, day))
        except (ApiError, ValueError):
            return None


def verification(entry: dict[str, Any]) -> str:
    """One word for the dispute team: ``verified`` only when a trusted key's signature still
    verifies the archived event and nothing flags it; ``unsigned`` for outside producers'
    events (nothing to check); otherwise ``not_verified`` (forged, altered or unverifiable)."""
    if entry.get("flag"):
        return "not_verified"
    valid = entry.get("signature_valid")
    if valid is True:
        return "verified"
    if valid is None and not entry.get("signed"):
        return "unsigned"
    return "not_verified"
