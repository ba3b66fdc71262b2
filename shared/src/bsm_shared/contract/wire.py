"""From a model to the bytes on the wire, signed; and the ids of new events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from .events import Envelope
from .limits import MAX_EVENT_BYTES, EventTooLarge, check_event_size, find_unstorable
from .signing import Signer, canonical_json

#: Namespace for ids derived from an input event id and a stage (re-emits keep their id).
_DERIVED_NS = uuid.UUID("7d7b5a3e-6f0e-4c55-9a53-2f1d2b0b5b10")


def derived_event_id(cause_event_id: uuid.UUID | str, stage: str) -> uuid.UUID:
    """The id of the event a stage emits for a given input event: the same fact re-emitted
    after a crash or redelivery gets the same id, so consumers drop the duplicate."""
    return uuid.uuid5(_DERIVED_NS, f"{cause_event_id}:{stage}")


def build_event(
    model: type[Envelope],
    data: BaseModel,
    *,
    event_id: uuid.UUID,
    occurred_at: datetime,
    producer: str,
    correlation_id: str,
    causation_id: str | uuid.UUID | None = None,
) -> Envelope:
    """A new event of the given model (validated like any event read from the wire)."""
    return model.model_validate(
        {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "producer": producer,
            "correlation_id": correlation_id,
            "causation_id": str(causation_id) if causation_id is not None else None,
            "type": model.model_fields["type"].annotation.__args__[0],  # type: ignore[union-attr]
            "data": data,
        }
    )


def to_wire(event: Envelope, signer: Signer | None) -> bytes:
    """The JSON bytes of an event, signed by ``signer`` (our services always pass one)."""
    obj: dict[str, Any] = event.model_dump(mode="json", exclude={"signature"})
    bad = find_unstorable(obj)
    if bad is not None:
        raise ValueError(f"{obj.get('type')} cannot be written: {bad[0]} contains {bad[1]}")
    if signer is not None:
        if obj["producer"] != signer.producer:
            raise ValueError(f"{signer.producer!r} cannot sign as {obj['producer']!r}")
        obj["signature"] = signer.sign(obj)
    payload = canonical_json(obj)
    return check_event_size(str(obj.get("type")), payload)


#: Room a batch signature takes in an event (its inclusion proof grows with the batch): an
#: event is measured without it, plus this much (a batch of 65,536 events needs about 900).
SIGNATURE_ALLOWANCE = 1024


def unsigned_body(event: Envelope) -> bytes:
    """The event's canonical bytes (every field but ``signature``: what a signature covers),
    checked: no unstorable text, and small enough for one Kafka record once signed
    (:class:`EventTooLarge` otherwise) — checked where it is made, so one event that cannot
    travel fails alone, before its batch is signed."""
    obj: dict[str, Any] = event.model_dump(mode="json", exclude={"signature"})
    bad = find_unstorable(obj)
    if bad is not None:
        raise ValueError(f"{obj.get('type')} cannot be written: {bad[0]} contains {bad[1]}")
    body = canonical_json(obj)
    if len(body) + SIGNATURE_ALLOWANCE > MAX_EVENT_BYTES:
        raise EventTooLarge(str(obj.get("type")), len(body) + SIGNATURE_ALLOWANCE)
    return body


#: In canonical JSON (keys sorted) ``signature`` comes right before the envelope's ``type``,
#: the last key but ``version``: the signed event is the body with the signature spliced in.
_BEFORE_TYPE = b',"type":'


def to_wire_batch(bodies: list[bytes], signer: Signer | None) -> list[bytes]:
    """The bytes of a batch of events (canonical bodies from :func:`unsigned_body`), with one
    signature over their Merkle root (``Signer.sign_bodies``); unsigned without a signer.
    Byte for byte what :func:`to_wire` writes for a signature, without serialising again."""
    if signer is None:
        return list(bodies)
    own = b'"producer":' + json.dumps(signer.producer).encode()
    out = []
    for body, signature in zip(bodies, signer.sign_bodies(bodies), strict=True):
        at = body.rindex(_BEFORE_TYPE)
        if body[at - len(own):at] != own:  # ``producer`` is the key right before
            raise ValueError(f"{signer.producer!r} may only sign its own events")
        out.append(body[:at] + b',"signature":' + json.dumps(signature).encode() + body[at:])
    return out


NewId = Callable[[], uuid.UUID]
