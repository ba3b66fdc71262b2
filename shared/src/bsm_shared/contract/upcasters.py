"""Upcasters: small pure functions that turn an older version of an event's ``data`` into the
next one (``upcast_<Type>_v1_v2``). There are none yet: every event is at version 1.

When a payload changes incompatibly, bump its entry in ``CURRENT_VERSIONS``, add the function
and register it in ``UPCASTERS``; readers keep accepting every older version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CURRENT_VERSIONS: dict[str, int] = {
    "PartyRegistered": 1,
    "SellerSettingsChanged": 1,
    "SellerMessagingRestricted": 1,
    "SellerMessagingRestrictionLifted": 1,
    "PartyErased": 1,
    "BuyerPreferencesChanged": 1,
    "OrderPlaced": 1,
    "OrderStatusChanged": 1,
    "MessageSubmitted": 1,
    "MessageAddressed": 1,
    "PolicyChecked": 1,
    "Delivered": 1,
    "Bounced": 1,
    "Reported": 1,
    "ResponseNotNeeded": 1,
    "BounceReportReceived": 1,
}

#: (type, from_version) -> function returning the event at from_version + 1.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upcast(event: dict[str, Any]) -> dict[str, Any]:
    """Apply upcasters until the event is at its current version."""
    etype, version = event["type"], event["version"]
    while version < CURRENT_VERSIONS[etype]:
        event = UPCASTERS[(etype, version)](event)
        version = event["version"]
    return event
