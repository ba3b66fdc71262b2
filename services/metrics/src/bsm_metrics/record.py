"""The record (G1): every event, append-only, as received, with its verification status.

What is archived is the event as it was on the wire (the signature covers it), except the
parties' registered addresses and names as outside producers send them, which are personal
data: they are replaced by a marker before the row is written (``redacted``), so the archive
never holds them in plaintext. What our own services write is already sealed with the party's
keyring key (``pii:v1:…``) and archived as is: erasing the party shreds it here too. The table
refuses UPDATE, DELETE and TRUNCATE by trigger, whatever role connects.
"""

from __future__ import annotations

import copy
from typing import Any

from bsm_shared.runtime.db import check_ident

#: Payload fields that carry personal data, per event type.
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "PartyRegistered": ("email", "display_name"),
    "SellerSettingsChanged": ("authorized_senders", "blocked_senders", "customer_service_email"),
}
REDACTED = "<personal data: not archived>"


def redact(event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The event without personal data, and whether anything was removed."""
    fields = PERSONAL_FIELDS.get(str(event.get("type")), ())
    data = event.get("data")
    if not fields or not isinstance(data, dict) or not any(data.get(f) for f in fields):
        return event, False
    clean = copy.deepcopy(event)
    for f in fields:
        if clean["data"].get(f):
            clean["data"][f] = REDACTED
    return clean, True


_PARTY_FIELDS = ("sender_party_id", "recipient_party_id", "buyer_id", "seller_id",
                 "reporter_party_id", "party_id")


def parties_of(event: dict[str, Any]) -> set[str]:
    """The party ids an event names."""
    data = event.get("data")
    if not isinstance(data, dict):
        return set()
    return {str(data[f]) for f in _PARTY_FIELDS if data.get(f)}


def order_id_of(event: dict[str, Any]) -> str | None:
    data = event.get("data") or {}
    value = data.get("order_id") if isinstance(data, dict) else None
    return str(value) if value else None


def message_id_of(event: dict[str, Any]) -> str | None:
    data = event.get("data") or {}
    value = data.get("message_id") if isinstance(data, dict) else None
    return str(value) if value else None


def grants(schema: str, role: str, tables: list[str]) -> list[str]:
    """Least privilege for the running service: the archive is insert-only for ``role``."""
    s, r = check_ident(schema), check_ident(role)
    return [
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"REVOKE ALL ON {s}.archive FROM {r}",
        f"GRANT SELECT, INSERT ON {s}.archive TO {r}",
        *[f"GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.{check_ident(t)} TO {r}" for t in tables],
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    ]


def migrations(schema: str) -> list[str]:
    s = check_ident(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.archive (
            position       bigserial   UNIQUE,
            event_id       uuid        PRIMARY KEY,
            topic          text        NOT NULL,
            partition      integer     NOT NULL,
            kafka_offset   bigint      NOT NULL,
            type           text        NOT NULL,
            version        integer     NOT NULL,
            producer       text        NOT NULL,
            occurred_at    timestamptz NOT NULL,
            correlation_id text        NOT NULL,
            causation_id   text,
            order_id       text,
            message_id     text,
            signed         boolean     NOT NULL,
            verified       boolean     NOT NULL,
            redacted       boolean     NOT NULL,
            event          jsonb       NOT NULL,
            archived_at    timestamptz NOT NULL DEFAULT now()
        )""",
        # Why an event failed the trust checks (forged, wrong producer); NULL when trusted.
        f"ALTER TABLE {s}.archive ADD COLUMN IF NOT EXISTS trust_error text",
        f"CREATE INDEX IF NOT EXISTS archive_order ON {s}.archive (order_id, occurred_at)",
        f"CREATE INDEX IF NOT EXISTS archive_message ON {s}.archive (message_id)",
        # Parties erased (``PartyErased``): timelines mark them, their sealed data is shredded.
        f"""CREATE TABLE IF NOT EXISTS {s}.erased_parties (
            party_id  text PRIMARY KEY,
            erased_at timestamptz NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.message_orders (
            message_id text PRIMARY KEY,
            order_id   text NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS message_orders_order ON {s}.message_orders (order_id)",
        f"""CREATE OR REPLACE FUNCTION {s}.refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the archive is append-only: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$""",
        f"DROP TRIGGER IF EXISTS archive_append_only ON {s}.archive",
        f"""CREATE TRIGGER archive_append_only BEFORE UPDATE OR DELETE ON {s}.archive
            FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change()""",
        f"DROP TRIGGER IF EXISTS archive_no_truncate ON {s}.archive",
        f"""CREATE TRIGGER archive_no_truncate BEFORE TRUNCATE ON {s}.archive
            FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change()""",
    ]
