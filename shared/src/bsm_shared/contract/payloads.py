"""Version-1 payloads of every bsm event (the ``data`` of the envelope).

Rules for change (the contract other teams integrate against): add fields freely (with a
default), never remove or rename one; a breaking change is a new ``version`` with an upcaster
in :mod:`bsm_shared.contract.upcasters`. Every model is frozen: an event is a fact.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from .limits import MAX_FILENAME_CHARS, MAX_ID_CHARS, clean_filename, clean_header_text

Role = Literal["buyer", "seller"]
Fulfilment = Literal["merchant", "platform"]
Channel = Literal["web", "email", "api"]
OrderStatus = Literal["pending", "shipped", "delivered", "completed", "cancelled", "returned"]
ContactReason = Literal[
    "unexpected_problem",
    "additional_information_required",
    "confirm_customization",
    "schedule_delivery",
    "schedule_service",
    "confirm_order_details",
    "return_information",
    "invoice",
    "warranty",
    "legal_disclosure",
    "digital_access_key",
    "review_request",
]
Stage = Literal["alias", "policy", "delivery"]
#: Why a recipient reports a message (E4): the one list the API, the mail-link form, the
#: report statistics (F3) and the docs use. ``other`` needs the reporter's own words.
ReportReason = Literal["spam", "inappropriate", "essential_misuse", "other"]
REPORT_REASONS: tuple[str, ...] = get_args(ReportReason)
#: What each reason means, in the words a reporter sees (English; the form and the docs).
REPORT_REASON_LABELS: dict[str, str] = {
    "spam": "Spam or unsolicited marketing",
    "inappropriate": "Inappropriate or offensive content",
    "essential_misuse": "Misuse of an essential message (e.g. promotion sent as an order update)",
    "other": "Something else (say what)",
}


def report_reason(reason: str) -> ReportReason:
    """The reason a ``Reported`` event counts under: one of :data:`REPORT_REASONS`; events
    from before the fixed list carry the reporter's free text there and count as ``other``."""
    return reason if reason in REPORT_REASONS else "other"  # type: ignore[return-value]


class Payload(BaseModel):
    """Base of every payload: frozen, and unknown fields kept (a newer producer may add some)."""

    model_config = ConfigDict(frozen=True, extra="allow")


# ---------------------------------------------------------------------------------------------
# bsm.parties
# ---------------------------------------------------------------------------------------------


class PartyRegistered(Payload):
    """A buyer or seller account exists. Published by the platform's account service."""

    party_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Stable party id.")
    role: Role = Field(description="`buyer` or `seller`.")
    email: str = Field(
        min_length=3,
        max_length=320,
        description="The party's real address. Personal data: services store it encrypted and "
        "never repeat it in an event or a log line. May be sent sealed with the party's keyring "
        "key (`pii:v1:<party id>:…`, field `email`, `bsm_shared.runtime.keyring`): then "
        "erasing the party makes it unreadable on this topic too.",
    )
    display_name: str = Field(
        max_length=400,
        description="A seller's business name, or the buyer's display name (up to 200 "
        "characters); plaintext or sealed like `email` (field `display_name`).",
    )
    locale: str = Field(default="en-US", description="BCP 47 locale, e.g. `es-ES`.")
    marketplace: str = Field(default="default", description="Marketplace id, e.g. `ES`.")


class SellerSettingsChanged(Payload):
    """A seller changed messaging settings; only the fields present changed."""

    seller_id: str = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="The seller's party id.")
    messaging_enabled: bool | None = Field(default=None, description="Vacation switch (C8).")
    fulfilment: Fulfilment | None = Field(default=None, description="Who fulfils orders.")
    authorized_senders: list[str] | None = Field(
        default=None,
        description="Alternate addresses accepted as the seller (A4). Personal data: outside "
        "producers may send plaintext; our services send each one sealed with the seller's key "
        "(`pii:v1:<seller id>:…`, see `bsm_shared.runtime.keyring`; earlier `sealed:v1:…`, "
        "see `bsm_shared.runtime.transit`).",
    )
    blocked_senders: list[str] | None = Field(
        default=None, description="Addresses refused as the seller (A4); plaintext or sealed."
    )
    customer_service_email: str | None = Field(
        default=None, description="Where bounce notices go (D1); plaintext or sealed."
    )
    opt_out_bounce_notices: bool | None = Field(
        default=None, description="No bounce notices for buyer opt-outs (D1b)."
    )


class SellerMessagingRestricted(Payload):
    """The sanction ladder (C10) moved a seller up a step: proactive messaging restricted for a
    while, or suspended. Written by the policy service (signed)."""

    seller_id: str = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="The seller's party id.")
    level: Literal["restricted", "suspended"] = Field(
        description="`restricted`: no proactive messages until `until`; `suspended`: none "
        "until an operator lifts it."
    )
    starts_at: AwareDatetime = Field(description="When the step takes effect (event time).")
    until: AwareDatetime | None = Field(
        default=None, description="When a restriction ends by itself (none for a suspension)."
    )
    violation_count: int = Field(ge=0, description="Violations counted towards this step.")
    reason: str = Field(description="Human explanation for the seller.")
    rule: str = Field(default="C10", description="Requirement id.")


class SellerMessagingRestrictionLifted(Payload):
    """An operator lifted a seller's restriction or suspension (C10). Written by the gateway
    (signed) on an operator's request."""

    seller_id: str = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="The seller's party id.")
    lifted_by: str = Field(description="The operator's party id.")
    lifted_at: AwareDatetime = Field(description="When it was lifted.")
    reason: str = Field(default="", description="Why.")


class PartyErased(Payload):
    """A party's personal data was erased (crypto-shredding): its data key in the keyring was
    destroyed, so every value sealed for it (``pii:v1:…``) in every event is unreadable from now
    on. Written by the gateway (signed) on an operator's request; services drop what they hold
    of the party (stored addresses, names, keys) and refuse messages to or from it."""

    party_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="The erased party.")
    erased_at: AwareDatetime = Field(description="When the key was destroyed.")
    requested_by: str = Field(description="The operator's party id.")
    reason: str = Field(default="", description="Why (e.g. a data-subject request id).")


class BuyerPreferencesChanged(Payload):
    """A buyer changed their messaging preferences."""

    buyer_id: str = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="The buyer's party id.")
    unsolicited_opt_out: bool = Field(description="Refuse unsolicited seller messages (C6).")


# ---------------------------------------------------------------------------------------------
# bsm.orders
# ---------------------------------------------------------------------------------------------


class OrderItem(Payload):
    """One line of an order, with the facts the communication rules depend on."""

    sku: str = Field(description="Stock keeping unit.")
    category: str = Field(default="general", description="Product category.")
    handmade: bool = Field(default=False, description="Handmade product (C6 exception).")
    custom: bool = Field(default=False, description="Custom / personalised product (C6).")
    wine: bool = Field(default=False, description="Wine (C6 exception).")


class OrderPlaced(Payload):
    """An order was placed. Published by the platform's order service."""

    order_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Order id.")
    buyer_id: str = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="The buyer's party id.")
    seller_id: str = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="The seller's party id.")
    placed_at: AwareDatetime = Field(description="When the order was placed.")
    items: list[OrderItem] = Field(default_factory=list, description="Order lines.")
    fulfilment: Fulfilment = Field(default="merchant", description="Who fulfils the order.")


class OrderStatusChanged(Payload):
    """An order changed status."""

    order_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Order id.")
    status: OrderStatus = Field(description="The new status.")
    changed_at: AwareDatetime = Field(description="When the status changed.")


# ---------------------------------------------------------------------------------------------
# Message path
# ---------------------------------------------------------------------------------------------


class PartyRef(Payload):
    """A sender or recipient: a party id, or an address (an alias at the marketplace domain,
    or, for mail arriving at the door, resolved by the alias service before publishing)."""

    party_id: str | None = Field(default=None, max_length=MAX_ID_CHARS,
                                 description="The party id, when known.")
    address: str | None = Field(default=None, max_length=320, description="An alias address.")

    @model_validator(mode="after")
    def _one_of(self) -> "PartyRef":
        if not self.party_id and not self.address:
            raise ValueError("a party reference needs `party_id` or `address`")
        return self


class AttachmentRef(Payload):
    """An attachment stored outside Kafka, in the blob store, by content hash."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the content (hex).")
    size: int = Field(ge=0, description="Size in bytes.")
    filename: str = Field(
        max_length=4 * MAX_FILENAME_CHARS,
        description="File name as sent, made safe for a mail header and a download: control "
        "characters (CR, LF…) become spaces, any path is dropped, at most 255 characters "
        "(`bsm_shared.contract.limits.clean_filename`; readers apply it to what they read).",
    )
    content_type: str = Field(max_length=255, description="MIME type as judged from the content.")

    @field_validator("filename")
    @classmethod
    def _safe_filename(cls, value: str) -> str:
        return clean_filename(value)


class MessageSubmitted(Payload):
    """Somebody submitted a message (web, email or API). The platform's clock for the message
    starts at `submitted_at`: when the platform received it (B5)."""

    message_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Message id.")
    channel: Channel = Field(description="`web`, `email` or `api`.")
    sender: PartyRef = Field(description="Who sends it.")
    recipient: PartyRef = Field(description="To whom.")
    order_id: str | None = Field(default=None, max_length=MAX_ID_CHARS,
                                 description="The order it is about, if any.")
    contact_reason: ContactReason | None = Field(
        default=None,
        description="Registry id; required for a seller starting a conversation, optional "
        "for buyers and for replies.",
    )
    subject: str = Field(
        default="", max_length=998,
        description="Subject line: one line (control characters, CR and LF included, are read "
        "as spaces).",
    )
    text: str | None = Field(default=None, description="Plain-text body.")
    html: str | None = Field(default=None, description="HTML body.")
    attachments: list[AttachmentRef] = Field(default_factory=list, description="Attachments.")
    in_reply_to: str | None = Field(default=None, max_length=MAX_ID_CHARS,
                                    description="Message id this answers.")
    submitted_at: AwareDatetime = Field(description="When the platform received it (B5).")

    @field_validator("subject")
    @classmethod
    def _one_line_subject(cls, value: str) -> str:
        return clean_header_text(value)

    @model_validator(mode="after")
    def _has_body(self) -> "MessageSubmitted":
        if self.text is None and self.html is None:
            raise ValueError("a message needs `text` and/or `html`")
        return self


class AddressedFields(Payload):
    """What the alias stage adds to a submitted message."""

    relationship_id: str = Field(description="The buyer–seller relationship (topic key).")
    conversation_id: str = Field(description="The conversation the message belongs to.")
    sender_party_id: str = Field(description="Resolved sender.")
    recipient_party_id: str = Field(description="Resolved recipient.")
    sender_role: Role = Field(description="The sender's role.")
    recipient_role: Role = Field(description="The recipient's role.")
    sender_alias: str = Field(description="The sender's alias address in this relationship.")
    recipient_alias: str = Field(description="The recipient's alias in this relationship.")
    sender_display_name: str = Field(
        description="Business name or buyer display name (A6), sealed with the sender's key "
        "(`pii:v1:<party id>:…`, `bsm_shared.runtime.keyring`, field `display_name`): personal "
        "data never travels in plaintext, and erasing the party makes it unreadable."
    )
    recipient_locale: str = Field(default="en-US", description="The recipient's locale.")
    sender_locale: str = Field(default="en-US", description="The sender's locale.")
    conversation_started_by: Role = Field(description="Who started the conversation.")


class MessageAddressed(MessageSubmitted, AddressedFields):
    """The submitted message with both parties, aliases and the conversation resolved."""


class Span(Payload):
    """Where in the message a violation is: character offsets into a field, or an element."""

    field: Literal["subject", "text", "html", "attachments", "message"] = Field(
        description="Which part of the message."
    )
    start: int | None = Field(default=None, description="Start offset (characters).")
    end: int | None = Field(default=None, description="End offset (characters, exclusive).")
    element: str | None = Field(default=None, description="HTML element or attachment name.")


class Violation(Payload):
    """One broken rule, explained (C11)."""

    rule: str = Field(description="Requirement id, e.g. `C4`.")
    code: str = Field(description="Stable machine code, e.g. `phone_number`.")
    detail: str = Field(description="Human explanation in the sender's language.")
    remedy: str = Field(default="", description="What the sender can do instead.")
    span: Span | None = Field(default=None, description="The offending part, where it applies.")


class PolicyFields(Payload):
    """What the policy stage adds."""

    verdict: Literal["approved", "rejected"] = Field(description="The decision.")
    essential: bool = Field(default=False, description="Delivered despite an opt-out (C6).")
    violations: list[Violation] = Field(default_factory=list, description="Every violation.")
    checked_at: AwareDatetime = Field(description="When policy decided.")


class PolicyChecked(MessageAddressed, PolicyFields):
    """The addressed message (HTML sanitized) with the policy decision."""


class Delivered(Payload):
    """The message reached the recipient's in-platform mailbox (and email, where forwarded)."""

    message_id: str = Field(description="Message id.")
    conversation_id: str = Field(description="Conversation id.")
    relationship_id: str = Field(description="Relationship id.")
    sender_party_id: str = Field(description="Sender.")
    recipient_party_id: str = Field(description="Recipient.")
    sender_role: Role = Field(description="The sender's role.")
    sender_alias: str = Field(description="The alias the recipient saw as sender.")
    recipient_alias: str = Field(description="The recipient's alias.")
    order_id: str | None = Field(default=None, description="Order id, if any.")
    in_reply_to: str | None = Field(default=None, description="Message this answers.")
    submitted_at: AwareDatetime = Field(description="When the platform received the message.")
    delivered_at: AwareDatetime = Field(description="When it was delivered.")
    channels: list[Literal["mailbox", "email"]] = Field(description="Where it was delivered.")
    subject: str = Field(default="", description="Delivered subject.")
    text: str | None = Field(default=None, description="Delivered text.")
    html: str | None = Field(default=None, description="Delivered (sanitized) HTML.")
    attachments: list[AttachmentRef] = Field(default_factory=list, description="Attachments.")
    email_message_id: str | None = Field(
        default=None, description="RFC 5322 Message-ID of the relayed mail."
    )


class Bounced(Payload):
    """The message was not delivered; says which stage stopped it, why, and what to do."""

    message_id: str = Field(description="Message id.")
    stage: Stage = Field(description="`alias`, `policy` or `delivery`.")
    reason_code: str = Field(description="Stable reason code.")
    rule: str | None = Field(default=None, description="Requirement id, where a rule applies.")
    explanation: str = Field(description="Human explanation.")
    remedy: str = Field(default="", description="What the sender can do.")
    violations: list[Violation] = Field(default_factory=list, description="Policy violations.")
    bounced_at: AwareDatetime = Field(description="When it bounced.")
    submitted_at: AwareDatetime | None = Field(default=None, description="When submitted.")
    relationship_id: str | None = Field(default=None, description="Where known.")
    conversation_id: str | None = Field(default=None, description="Where known.")
    sender_party_id: str | None = Field(default=None, description="Where known.")
    recipient_party_id: str | None = Field(default=None, description="Where known.")
    sender_role: Role | None = Field(default=None, description="Where known.")
    order_id: str | None = Field(default=None, description="Where known.")
    after_delivery: bool = Field(
        default=False,
        description="The message was handed over and later reported undeliverable by the "
        "recipient's mail provider (a bounce report at its VERP return path, D1); the record "
        "keeps both events, `Delivered` and this `Bounced`.",
    )


class Reported(Payload):
    """A recipient reported a message (E4)."""

    message_id: str = Field(description="The reported message.")
    reporter_party_id: str = Field(description="Who reported it.")
    reason: str = Field(description="Why: one of `spam`, `inappropriate`, `essential_misuse`, "
                        "`other` (`REPORT_REASONS`). Events from before the fixed list carry "
                        "the reporter's free text here; they count as `other` "
                        "(`report_reason`).")
    reported_at: AwareDatetime = Field(description="When.")
    text: str | None = Field(default=None,
                             description="The reporter's own words (the API requires them with "
                             "`other`).")


class ResponseNotNeeded(Payload):
    """A seller marked a buyer message as needing no response (E2)."""

    message_id: str = Field(description="The message.")
    party_id: str = Field(description="Who marked it.")
    marked_at: AwareDatetime = Field(description="When.")


class BounceReportReceived(Payload):
    """The mail door received a delivery status report (RFC 3464, or a provider's own bounce
    text) at a message's signed VERP return path. No address of anyone is in it."""

    message_id: str = Field(description="The message the return path names.")
    received_at: AwareDatetime = Field(description="When the mail door received the report.")
    action: Literal["failed", "delayed", "delivered", "relayed", "expanded"] = Field(
        description="RFC 3464 `Action` of the report (a non-standard bounce counts as `failed`)."
    )
    status: str = Field(
        max_length=16, description="RFC 3463 status code, e.g. `5.1.1` (`5.0.0` when a "
        "non-standard bounce gives none).",
    )
    diagnostic: str = Field(
        default="", max_length=1000,
        description="The remote server's text (`Diagnostic-Code`), every email address in it "
        "replaced by `[address]`.",
    )
    reporting_mta: str = Field(
        default="", max_length=255,
        description="Host name of the mail server that reported (`Reporting-MTA`, else "
        "`Remote-MTA`), without the type prefix.",
    )
    standard: bool = Field(
        description="Whether the report had a `message/delivery-status` part (RFC 3464); false "
        "for a provider's plain-text bounce, read heuristically."
    )
