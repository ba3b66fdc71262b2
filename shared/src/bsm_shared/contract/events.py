"""The envelope and the discriminated union of every event, with one parser.

Every event on every topic is one JSON object: the envelope fields below plus ``data`` (the
payload of :mod:`bsm_shared.contract.payloads`). The wire names (``type``) are stable event
names, never Python import paths. ``version`` is the schema version of ``data``; readers accept
every version they know, and older versions are upcast (see :mod:`.upcasters`) before parsing.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeAlias, Union
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from . import payloads as p
from .limits import find_unstorable
from .upcasters import CURRENT_VERSIONS, upcast


class Envelope(BaseModel):
    """Fields every event carries (the payload is in ``data``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(
        description="UUID; time-ordered (v7) for new facts; a re-emit of the same fact keeps the "
        "same id (derived from the input event id and the stage), so consumers drop duplicates."
    )
    type: str = Field(description="The event name, e.g. `MessageSubmitted`.")
    version: int = Field(ge=1, description="Schema version of `data`.")
    occurred_at: AwareDatetime = Field(description="RFC 3339 UTC timestamp of the fact.")
    producer: str = Field(
        min_length=1, max_length=64, description="The service or external system that wrote it."
    )
    correlation_id: str = Field(
        description="The message id the event belongs to (or the order / party id)."
    )
    causation_id: str | None = Field(
        default=None, description="The `event_id` of the event that caused this one, if any."
    )
    signature: str | None = Field(
        default=None,
        description="Over the canonical JSON of every other field (sorted keys, no spaces, "
        "UTF-8; G1). Always present on events our services produce, in one of two forms: "
        "`ed25519-merkle:<key id>:<base64 signature>:<tree size>:<index>:<base64 audit path>` "
        "— one Ed25519 signature per batch of events, over `bsm-event-batch-v1\\n` + the tree "
        "size (8 bytes, big-endian) + the Merkle root (RFC 9162 §2.1, SHA-256) of the batch's "
        "canonical events; the event's leaf hash and its audit path (32-byte hashes, leaf to "
        "root) rebuild the root, so each event verifies alone — or, for events written before "
        "batches, `ed25519:<key id>:<base64 signature>` over the event itself.",
    )


def _event(name: str, payload: type[BaseModel], doc: str) -> type[Envelope]:
    """Build the envelope model for one event type (version 1)."""
    model = type(
        name + "Event",
        (Envelope,),
        {
            "__doc__": doc,
            "__annotations__": {
                "type": Literal[name],  # type: ignore[valid-type]
                "version": Literal[1],
                "data": payload,
            },
            "version": Field(default=1, description="Schema version of `data`."),
            "data": Field(description=payload.__doc__ or name),
        },
    )
    return model


PartyRegisteredEvent = _event("PartyRegistered", p.PartyRegistered, p.PartyRegistered.__doc__ or "")
SellerSettingsChangedEvent = _event(
    "SellerSettingsChanged", p.SellerSettingsChanged, p.SellerSettingsChanged.__doc__ or ""
)
SellerMessagingRestrictedEvent = _event(
    "SellerMessagingRestricted", p.SellerMessagingRestricted,
    p.SellerMessagingRestricted.__doc__ or "",
)
SellerMessagingRestrictionLiftedEvent = _event(
    "SellerMessagingRestrictionLifted", p.SellerMessagingRestrictionLifted,
    p.SellerMessagingRestrictionLifted.__doc__ or "",
)
PartyErasedEvent = _event("PartyErased", p.PartyErased, p.PartyErased.__doc__ or "")
BuyerPreferencesChangedEvent = _event(
    "BuyerPreferencesChanged", p.BuyerPreferencesChanged, p.BuyerPreferencesChanged.__doc__ or ""
)
OrderPlacedEvent = _event("OrderPlaced", p.OrderPlaced, p.OrderPlaced.__doc__ or "")
OrderStatusChangedEvent = _event(
    "OrderStatusChanged", p.OrderStatusChanged, p.OrderStatusChanged.__doc__ or ""
)
MessageSubmittedEvent = _event(
    "MessageSubmitted", p.MessageSubmitted, p.MessageSubmitted.__doc__ or ""
)
MessageAddressedEvent = _event(
    "MessageAddressed", p.MessageAddressed, p.MessageAddressed.__doc__ or ""
)
PolicyCheckedEvent = _event("PolicyChecked", p.PolicyChecked, p.PolicyChecked.__doc__ or "")
DeliveredEvent = _event("Delivered", p.Delivered, p.Delivered.__doc__ or "")
BouncedEvent = _event("Bounced", p.Bounced, p.Bounced.__doc__ or "")
ReportedEvent = _event("Reported", p.Reported, p.Reported.__doc__ or "")
ResponseNotNeededEvent = _event(
    "ResponseNotNeeded", p.ResponseNotNeeded, p.ResponseNotNeeded.__doc__ or ""
)
BounceReportReceivedEvent = _event(
    "BounceReportReceived", p.BounceReportReceived, p.BounceReportReceived.__doc__ or ""
)

#: Every event model, by wire name.
EVENT_MODELS: dict[str, type[Envelope]] = {
    m.model_fields["type"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (
        PartyRegisteredEvent,
        SellerSettingsChangedEvent,
        SellerMessagingRestrictedEvent,
        SellerMessagingRestrictionLiftedEvent,
        PartyErasedEvent,
        BuyerPreferencesChangedEvent,
        OrderPlacedEvent,
        OrderStatusChangedEvent,
        MessageSubmittedEvent,
        MessageAddressedEvent,
        PolicyCheckedEvent,
        DeliveredEvent,
        BouncedEvent,
        ReportedEvent,
        ResponseNotNeededEvent,
        BounceReportReceivedEvent,
    )
}

AnyEvent: TypeAlias = Annotated[
    Union[tuple(EVENT_MODELS.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)

assert set(EVENT_MODELS) == set(CURRENT_VERSIONS), "every event needs a current version"


class EventParseError(ValueError):
    """An event could not be parsed: says why, for the dead-letter entry."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


#: A run of 19 digits: a number orjson might read differently from ``json`` (it turns integers
#: beyond 64 bits into floats).
_LONG_NUMBER = re.compile(rb"\d{19}")


def decode_json(raw: bytes | str) -> dict[str, Any]:
    """The raw JSON object of an event (what signatures are checked against).

    ``json.loads`` defines the result. orjson reads the same objects ≈ 3× faster and is used
    where it agrees: it refuses what ``json`` reads differently (NaN, 1e400, a UTF-8 BOM or
    UTF-16, lone surrogates), and those inputs go to ``json``, as do bytes holding a number of
    19 digits or more (``tests/unit/test_decode_json.py`` holds the two to the same results).
    """
    return read_json(raw)[0]


def read_json(raw: bytes | str) -> tuple[dict[str, Any], bool]:
    """:func:`decode_json`, and whether the object surely holds no unstorable text (see
    ``limits.unstorable``), known from the bytes without walking the object: orjson read them,
    which refuses a lone surrogate in any spelling, and they hold no ``\\u0000``, the only
    spelling of U+0000 in JSON (a raw control character in a string is malformed)."""
    storable = False
    if isinstance(raw, bytes) and not _LONG_NUMBER.search(raw):
        try:
            obj = orjson.loads(raw)
            storable = b"\\u0000" not in raw
        except orjson.JSONDecodeError:
            obj = _json_loads(raw)
    else:
        obj = _json_loads(raw)
    if not isinstance(obj, dict):
        raise EventParseError("not_an_object", "an event is one JSON object")
    return obj, storable


def _json_loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventParseError("malformed_json", str(exc)) from exc
    except RecursionError:
        raise EventParseError("malformed_json", "nested too deeply to read") from None


def parse_event(obj: dict[str, Any] | bytes | str, *, storable: bool = False) -> Envelope:
    """The one parser: raw event (bytes or decoded object) to its frozen model.

    Older versions of ``data`` are upcast first; a version newer than this reader knows is an
    error (the reader must be upgraded), never a guess. ``storable``: the caller knows from
    :func:`read_json` that no string in ``obj`` is unstorable, and the walk over them is
    skipped.
    """
    if not isinstance(obj, dict):
        obj, storable = read_json(obj)
    etype = obj.get("type")
    if etype not in EVENT_MODELS:
        raise EventParseError("unknown_type", f"unknown event type {etype!r}")
    version = obj.get("version")
    if not isinstance(version, int) or version < 1:
        raise EventParseError("bad_version", f"version must be a positive integer, got {version!r}")
    if version > CURRENT_VERSIONS[etype]:
        raise EventParseError(
            "unsupported_version",
            f"{etype} version {version} is newer than this reader knows "
            f"({CURRENT_VERSIONS[etype]})",
        )
    try:
        bad = None if storable else find_unstorable(obj)
    except RecursionError:
        raise EventParseError("invalid_event", "nested too deeply to read") from None
    if bad is not None:
        # PostgreSQL cannot store it and UTF-8 cannot carry it: refused here, before any
        # stage or the record tries (see ``limits``).
        raise EventParseError(
            "unstorable_text", f"{bad[0]}: contains {bad[1]}, which no stage can store"
        )
    obj = upcast(obj)
    try:
        return _ANY_EVENT.validate_python(obj)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise EventParseError("invalid_event", errors) from exc


def event_type_of(model: type[Envelope]) -> str:
    """The wire name of an event model."""
    return model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
