"""The record, through the metrics service: an order's timeline with each signature
re-checked (G1), a seller's response times (F1) and daily quota (F2), report statistics (F3)."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from bsm_shared.record_api import Quota, ReportStats, ResponseTimes

from .. import access
from ..metrics_client import MetricsClient, Window, verification
from ..models import Timeline
from .deps import Caller

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token."},
    403: {"description": "The role may not see this."},
    404: {"description": "Nothing in the record for it."},
    503: {"description": "The metrics service cannot be reached; try again."},
}


def router(metrics: MetricsClient) -> APIRouter:
    r = APIRouter(tags=["record"])

    @r.get("/v1/orders/{order_id}/timeline", response_model=Timeline, responses=_ERRORS,
           summary="Every event of an order in time order, each signature re-checked "
           "(dispute team and operators)")
    async def timeline(
        who: Caller,
        order_id: Annotated[str, Path(min_length=1, max_length=128)],
        as_of: Annotated[AwareDatetime | None, Query(
            description="The order as it stood at this instant (RFC 3339 with a zone).")] = None,
    ) -> Any:
        access.require(who, "read_record")
        body = await metrics.timeline(order_id, as_of)
        for entry in body.get("events", []):
            entry["verification"] = verification(entry)
        return body

    @r.get("/v1/sellers/{seller_id}/response-times", response_model=ResponseTimes,
           responses=_ERRORS,
           summary="How fast a seller answers buyers (F1): the seller, or an operator")
    async def response_times(
        who: Caller,
        seller_id: Annotated[str, Path(min_length=1, max_length=128)],
        window: Annotated[Window, Query(description="`7d`, `30d` (default) or `90d`.")] = "30d",
        as_of: Annotated[AwareDatetime | None, Query(
            description="End of the window (default: now).")] = None,
    ) -> Any:
        access.require(who, "read_response_times", seller_id)
        return await metrics.response_times(seller_id, window, as_of)

    @r.get("/v1/sellers/{seller_id}/quota", response_model=Quota, responses=_ERRORS,
           summary="A seller's daily limit and its use (F2, C7): the seller, or an operator")
    async def quota(
        who: Caller,
        seller_id: Annotated[str, Path(min_length=1, max_length=128)],
        day: Annotated[date | None, Query(description="The UTC day (default: today).")] = None,
    ) -> Any:
        access.require(who, "read_quota", seller_id)
        return await metrics.quota(seller_id, day)

    @r.get("/v1/reports/stats", response_model=ReportStats, responses=_ERRORS,
           summary="Reported messages by reason and sender, and abuse patterns (F3): "
           "operators (trust & safety) and the dispute team")
    async def report_stats(
        who: Caller,
        window: Annotated[Window, Query(description="`7d`, `30d` (default) or `90d`.")] = "30d",
        as_of: Annotated[AwareDatetime | None, Query(
            description="End of the window (default: now).")] = None,
    ) -> Any:
        access.require(who, "read_report_stats")
        return await metrics.report_stats(window, as_of)

    return r
