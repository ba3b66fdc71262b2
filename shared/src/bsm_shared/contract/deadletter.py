"""The dead-letter entry: what a consumer writes to ``<topic>.dlq`` instead of the event it could
not take, and every reason it gives. Entries are kept forever: each one is an unresolved problem
for a person to look at (``make status`` counts them; the test runs fail on one nobody
declared)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Every ``error_code`` a dead-letter entry can carry, and what it means.
ERROR_CODES: dict[str, str] = {
    "malformed_json": "The record is not JSON (or not UTF-8).",
    "not_an_object": "The record is JSON but not one object.",
    "unknown_type": "`type` names no event this reader knows.",
    "bad_version": "`version` is not a positive integer.",
    "unsupported_version": "`version` is newer than this reader knows: upgrade the reader.",
    "unstorable_text": "A string holds U+0000 or a lone surrogate, which PostgreSQL cannot store "
                       "and UTF-8 cannot carry (`bsm_shared.contract.limits`).",
    "invalid_event": "The event does not match its schema (the error lists the fields).",
    "unsigned": "An event claiming to come from one of our services carries no signature.",
    "malformed_signature": "The signature field cannot be read.",
    "unsupported_algorithm": "The signature is not Ed25519.",
    "untrusted_key": "The signing key is not one the deployment trusts for that producer.",
    "bad_signature": "The signature does not verify: the event was altered or forged.",
    "untrusted_producer": "An unsigned event on a topic only our services write.",
    "wrong_producer": "The producer may not write this topic or this event type.",
    "handler_error": "The service failed on this event (a bug, or input it cannot handle); "
                     "the error says which. The events around it were applied.",
    "retries_exhausted": "The event failed with a transient error `max_event_retries` times "
                         "while the database answered: the error is the event's.",
    "unparseable_deferred": "An event parked for a late prerequisite can no longer be read "
                            "(the reader changed meanwhile).",
}


class DeadLetterEntry(BaseModel):
    """One entry of a ``<topic>.dlq`` topic (key: the original record's key)."""

    model_config = ConfigDict(frozen=True)

    consumer: str = Field(description="The consumer (service) that could not take the event.")
    error_code: str = Field(description="Why, as a stable code (see the table of codes).")
    error: str = Field(description="Why, for people: the parser's, verifier's or handler's error.")
    topic: str = Field(description="Where the record is: topic,")
    partition: int = Field(description="partition,")
    offset: int = Field(description="and offset (the original stays there).")
    key: str | None = Field(default=None, description="The record's key (UTF-8, replaced).")
    value: str | None = Field(
        default=None,
        description="The record's value as text (its first 32,768 characters), if UTF-8.")
    value_base64: str | None = Field(
        default=None, description="The value's first 128 KiB in base64, if it is not UTF-8.")
    value_bytes: int = Field(description="The value's full size.")
    value_truncated: bool = Field(description="Whether `value`/`value_base64` hold only a part.")
    value_sha256: str = Field(description="SHA-256 of the full value (hex).")
    failed_at: str = Field(description="When the consumer gave up on it (RFC 3339).")
