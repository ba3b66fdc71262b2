"""Builders of valid events for tests (one place, so tests state only what matters to them)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from bsm_shared.contract import payloads as p
from bsm_shared.contract.signing import Signer, Verifier

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def uid() -> str:
    return uuid.uuid4().hex[:12]


def key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def signers(*producers: str) -> tuple[dict[str, Signer], Verifier]:
    keys = {name: Ed25519PrivateKey.generate() for name in producers}
    verifier = Verifier({name: (k.public_key(),) for name, k in keys.items()})
    return {name: Signer(name, k) for name, k in keys.items()}, verifier


def submitted(**over: Any) -> p.MessageSubmitted:
    base: dict[str, Any] = dict(
        message_id="m-" + uid(), channel="web", sender=p.PartyRef(party_id="buyer-1"),
        recipient=p.PartyRef(party_id="seller-1"), order_id="o-1", subject="Where is my order?",
        text="Hello, has it shipped yet?", submitted_at=T0,
    )
    base.update(over)
    return p.MessageSubmitted(**base)


def addressed(**over: Any) -> p.MessageAddressed:
    msg = submitted(**{k: v for k, v in over.items() if k in p.MessageSubmitted.model_fields})
    fields: dict[str, Any] = dict(
        relationship_id="r-1", conversation_id="c-1", sender_party_id="buyer-1",
        recipient_party_id="seller-1", sender_role="buyer", recipient_role="seller",
        sender_alias="aaaaaaaaaaaaaaa1@marketplace.example",
        recipient_alias="bbbbbbbbbbbbbbb2@marketplace.example",
        sender_display_name="Ana B.", conversation_started_by="buyer",
    )
    fields.update({k: v for k, v in over.items() if k not in p.MessageSubmitted.model_fields})
    return p.MessageAddressed.model_validate({**msg.model_dump(), **fields})


def policy_checked(**over: Any) -> p.PolicyChecked:
    decision: dict[str, Any] = dict(verdict="approved", essential=False, violations=[], checked_at=T0)
    decision.update({k: v for k, v in over.items() if k in p.PolicyFields.model_fields})
    msg = addressed(**{k: v for k, v in over.items() if k not in p.PolicyFields.model_fields})
    return p.PolicyChecked.model_validate({**msg.model_dump(), **decision})
