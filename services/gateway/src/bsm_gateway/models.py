"""The HTTP API's request and response shapes (documented in the OpenAPI document)."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator,
)

from bsm_shared.contract.limits import (
    MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_BODY_BYTES, MAX_SUBJECT_CHARS, clean_header_text,
)
from bsm_shared import record_api
from bsm_shared.contract.payloads import REPORT_REASONS, ContactReason, ReportReason

from .core import readable_filename
from .i18n import LANGUAGES, Language

# Text no stage can store (U+0000, lone surrogates) never reaches these models: the door
# refuses it first (:mod:`.door`). What they add is the shape of header-bound values.

#: A subject is one header line: CR, LF, tabs and other control characters become spaces
#: (what the contract does to `MessageSubmitted.subject` anyway; stored and shown the same).
Subject = Annotated[str, Field(max_length=MAX_SUBJECT_CHARS), AfterValidator(clean_header_text)]

#: A file name as the reader will see it: encoded words decoded, one line, no path, at most
#: `MAX_FILENAME_CHARS` characters keeping the extension (longer names are cut, not refused).
FileName = Annotated[str, Field(min_length=1), AfterValidator(readable_filename)]



def _one_token(value: str) -> str:
    bad = next((c for c in value if c.isspace() or unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"an address has no spaces or control characters (CR, LF…); "
                         f"found U+{ord(bad):04X} at character {value.index(bad)}")
    return value


#: A mail address goes into mail headers and the SMTP envelope: one token, no spaces and no
#: control characters inside (CR/LF is refused, not repaired: a repaired address would be
#: another address); spaces around it are dropped.
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320),
                    AfterValidator(_one_token)]


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="As `POST /v1/attachments` "
                        "answered.")
    filename: FileName = Field(description="Name shown to the reader (made one safe line, "
                               "at most 255 characters).")


class SendMessage(BaseModel):
    """A message: a new conversation about an order (sellers give a contact reason) or a reply
    (`in_reply_to`). The recipient follows from the order or the answered message; naming it
    is optional."""

    model_config = ConfigDict(extra="forbid")

    sender_party_id: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Ignored with a token (the token names the sender); only the local "
        "stack's unauthenticated development mode reads it.")
    recipient_party_id: str | None = Field(default=None, max_length=128, description="To whom.")
    recipient_alias: Address | None = Field(default=None,
                                            description="…or to an alias address.")
    order_id: str | None = Field(default=None, max_length=128, description="The order.")
    contact_reason: ContactReason | None = Field(
        default=None, description="Required for a seller starting a conversation.")
    subject: Subject = Field(default="", description="Subject: one line (CR, LF and other "
                             "control characters become spaces).")
    text: str | None = Field(default=None, max_length=MAX_BODY_BYTES, description=(
        f"Plain text. Text and HTML together: at most {MAX_BODY_BYTES:,} bytes (UTF-8)."))
    html: str | None = Field(default=None, max_length=MAX_BODY_BYTES, description=(
        f"HTML body. Text and HTML together: at most {MAX_BODY_BYTES:,} bytes (UTF-8)."))
    in_reply_to: str | None = Field(default=None, max_length=128, description="Answered id.")
    attachments: list[AttachmentIn] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS,
        description=f"Uploaded attachments: at most {MAX_ATTACHMENTS}, together at most "
        f"{MAX_ATTACHMENT_BYTES // 2**20} MB.")
    channel: Literal["web", "api"] = Field(default="web", description="`web` or `api`.")


class Accepted(BaseModel):
    message_id: str = Field(description="The message's id.")
    status: Literal["accepted"] = Field(description="Accepted for processing.")
    detail: str = Field(description="What happens next.")


class Outcome(BaseModel):
    status: Literal["submitted", "addressed", "delivered", "bounced"] = Field(
        description="`submitted` (accepted, not yet addressed), `addressed` (being checked), "
        "`delivered`, or `bounced`.")
    delivered_at: str | None = Field(default=None, description="When delivered.")
    bounce: dict[str, Any] | None = Field(
        default=None, description="Why it bounced: stage, reason_code, rule, explanation, "
        "remedy, violations, and `after_delivery`: the message was delivered (status stays "
        "`delivered`) but its email copy was later reported undeliverable by the recipient's "
        "provider.")


class MessageView(BaseModel):
    message_id: str = Field(description="Message id.")
    conversation_id: str | None = Field(description="Conversation, once addressed.")
    order_id: str | None = Field(description="Order.")
    sender_party_id: str | None = Field(description="Sender.")
    recipient_party_id: str | None = Field(description="Recipient.")
    sender_role: str | None = Field(description="`buyer` or `seller`.")
    contact_reason: str | None = Field(description="Contact reason of a new conversation.")
    subject: str = Field(description="Subject.")
    text: str | None = Field(description="Plain text.")
    html: str | None = Field(description="HTML, sanitized (allow-list) for display.")
    in_reply_to: str | None = Field(description="The message this answers.")
    quoted: str | None = Field(default=None, description="Text of the answered message (E6).")
    attachments: list[dict[str, Any]] = Field(description="Attachments.")
    submitted_at: str = Field(description="When the platform received it.")
    outcome: Outcome = Field(description="Delivered or bounced, with the explanation.")
    response_not_needed: bool = Field(description="Marked *no response needed* (E2).")
    reported: bool = Field(description="Reported (E4).")
    read: bool = Field(description="Read by its recipient.")


class ConversationSummary(BaseModel):
    conversation_id: str = Field(description="Conversation id.")
    order_id: str | None = Field(description="Order.")
    buyer_id: str = Field(description="Buyer.")
    seller_id: str = Field(description="Seller.")
    subject: str = Field(description="Subject of the first message.")
    view: str | None = Field(description="`response_needed`, `sent` or `no_response_needed` "
                             "for the caller.")
    state: Literal["open", "resolved", "closed"] = Field(description="Conversation state.")
    last_message_at: str = Field(description="Time of the latest message.")
    messages: int = Field(description="Number of messages.")
    unread: int = Field(description="Messages to the caller not yet read.")
    buyer_name: str | None = Field(
        default=None, description="The buyer's display name, as the seller's mail shows it "
        "(A6); null when the message center does not know it, or the buyer was erased.")
    seller_name: str | None = Field(
        default=None, description="The seller's business name, as the buyer's mail shows it "
        "(A6); null as for `buyer_name`.")
    buyer_erased: bool = Field(default=False, description="The buyer's personal data was "
                               "erased: no name will be shown again.")
    seller_erased: bool = Field(default=False, description="The seller's personal data was "
                                "erased: no name will be shown again.")
    response_due_at: str | None = Field(
        default=None, description="When the seller's answer is due (E1, F1): 24 hours after "
        "the oldest buyer message still unanswered (not marked *no response needed*, not "
        "reported); null when no answer is owed.")


class ConversationList(BaseModel):
    filter: str = Field(description="The filter applied.")
    order_id: str | None = Field(description="The order searched for, if any (as searched: "
                                 "without surrounding spaces).")
    conversations: list[ConversationSummary] = Field(
        description="Newest first: by the latest message's time, then conversation id.")
    next: str | None = Field(default=None, description="Pass as `cursor` for the next page; "
                             "null on the last page.")


class Conversation(ConversationSummary):
    message_list: list[MessageView] = Field(description="Messages, oldest first.")


class Notification(BaseModel):
    kind: str = Field(description="`bounce`: one of your messages was not delivered.")
    message_id: str = Field(description="Your message.")
    conversation_id: str | None = Field(default=None, description="Its conversation.")
    order_id: str | None = Field(default=None, description="Its order.")
    subject: str = Field(description="Its subject.")
    at: str = Field(description="When it was stopped (RFC 3339).")
    rule: str | None = Field(default=None, description="The rule that stopped it.")
    stage: str | None = Field(default=None, description="Where it was stopped.")
    explanation: str = Field(description="Why, in your language.")
    remedy: str | None = Field(default=None, description="What you can do.")


class Report(BaseModel):
    """A report (E4): a reason from the fixed list, so patterns can be counted (F3)."""

    model_config = ConfigDict(extra="forbid")
    reason: ReportReason = Field(description="Why: " + ", ".join(
        f"`{r}`" for r in REPORT_REASONS) + " (`other` needs `text`).")
    text: str | None = Field(default=None, max_length=1000,
                             description="In your own words (required with `other`).")

    @model_validator(mode="after")
    def _other_says_what(self) -> "Report":
        if self.text is not None:
            self.text = self.text.strip() or None
        if self.reason == "other" and not self.text:
            raise ValueError("a report with reason `other` needs `text`: say what is wrong")
        return self


class ActionAccepted(BaseModel):
    message_id: str = Field(description="The message.")
    status: Literal["accepted"] = Field(description="Recorded as an event.")
    event_id: str = Field(description="The event recorded (the same on a repeat).")


class SellerSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messaging_enabled: bool | None = Field(default=None, description="Vacation switch (C8).")
    authorized_senders: list[Address] | None = Field(
        default=None, max_length=20, description="Alternate addresses accepted as you (A4).")
    blocked_senders: list[Address] | None = Field(default=None, max_length=100,
                                                  description="Addresses refused as you (A4).")
    customer_service_email: Address | None = Field(default=None,
                                                   description="Where bounce notices go.")
    opt_out_bounce_notices: bool | None = Field(default=None,
                                                description="No bounce notices for opt-outs.")


class SellerSettingsOut(BaseModel):
    seller_id: str
    messaging_enabled: bool = Field(description="Messaging on (off: vacation, C8).")
    opt_out_bounce_notices: bool = Field(description="No bounce notices for opted-out buyers.")
    authorized_senders: list[str] | None = Field(
        description="Addresses accepted as the seller (A4); `null`: not known to the message "
        "center (set before it kept them, or unreadable) — sending a list replaces it.")
    blocked_senders: list[str] | None = Field(
        description="Addresses refused as the seller (A4); `null` as above.")
    customer_service_email: str | None = Field(
        description="Where bounce notices go (D1); `null`: none set, or not known.")


class ErasureIn(BaseModel):
    reason: str = Field(default="", max_length=500,
                        description="Why (e.g. the data-subject request's id); kept in the event.")


class ErasureOut(BaseModel):
    party_id: str
    status: Literal["erased", "already_erased"]
    erased_at: datetime = Field(description="When the party's key was destroyed.")
    event_id: str | None = Field(default=None, description="The `PartyErased` event, if new.")


class BuyerPreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unsolicited_opt_out: bool = Field(description="Refuse unsolicited seller messages (C6).")


class LiftRestriction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000, description="Why it is lifted.")


class TemplateText(BaseModel):
    """A template's text in one language."""

    model_config = ConfigDict(extra="forbid")
    subject: Subject = Field(default="", description="Subject (one line).")
    text: str = Field(min_length=1, max_length=20_000, description="Text.")


class TemplateIn(BaseModel):
    """One of your templates (E5): its text in the language it is written in (``language``),
    and, if you like, in other marketplace languages (``translations``). A buyer gets the
    text in their marketplace language, else English, else ``language``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="Name.")
    subject: Subject = Field(default="", description="Subject (one line).")
    text: str = Field(min_length=1, max_length=20_000, description="Text.")
    language: Language = Field(default="en", description="Language of `subject` and `text`: "
                               + ", ".join(f"`{x}`" for x in LANGUAGES) + ".")
    translations: dict[Language, TemplateText] = Field(
        default_factory=dict, description="The same template in other languages, by language.")

    @model_validator(mode="after")
    def _one_text_per_language(self) -> "TemplateIn":
        if self.language in self.translations:
            raise ValueError(f"`translations` repeats `{self.language}`, the template's own "
                             "language: give that text in `subject` and `text` only")
        return self

    def texts(self) -> dict[str, TemplateText]:
        """Every language's text, the template's own included."""
        return {self.language: TemplateText(subject=self.subject, text=self.text),
                **self.translations}


class Template(BaseModel):
    template_id: str = Field(description="Id (`platform:<name>` for platform templates).")
    kind: Literal["own", "platform"] = Field(description="Yours or the platform's.")
    name: str = Field(description="Name.")
    locale: str | None = Field(default=None, description="The language of this text.")
    requested_language: str | None = Field(
        default=None, description="The language asked for (the buyer's marketplace language, "
        "with `order_id` or `locale`); null when none was asked for.")
    fell_back: bool = Field(default=False, description="True when the template has no text "
                            "in the requested language and this one (English, else the "
                            "template's own language) is given instead.")
    languages: list[str] = Field(default_factory=list,
                                 description="Every language the template has a text in.")
    subject: str = Field(description="Subject.")
    text: str = Field(description="Text.")


class StoredAttachment(BaseModel):
    sha256: str = Field(description="Content hash: reference it in `attachments`.")
    size: int = Field(description="Bytes.")
    content_type: str = Field(description="Type as judged from the content.")
    filename: str = Field(description="Name as uploaded, made one safe line (encoded words "
                          "decoded, control characters as spaces, no path, at most 255 "
                          "characters): reference the attachment with it.")


class Me(BaseModel):
    party_id: str = Field(description="Who you are.")
    role: str = Field(description="Your role.")
    locale: str | None = Field(default=None, description="Your locale, when known.")
    messaging_enabled: bool | None = Field(default=None, description="Sellers: messaging on.")
    restriction: str | None = Field(default=None, description="Sellers: current restriction.")
    unsolicited_opt_out: bool | None = Field(default=None, description="Buyers: opted out.")


class VerifiedEntry(record_api.TimelineEntry):
    """A timeline entry as the gateway shows it: the record's entry (one model,
    :mod:`bsm_shared.record_api`) with the gateway's one-word verdict."""

    verification: Literal["verified", "not_verified", "unsigned"] = Field(
        description="`verified` only if the signature verifies and nothing flags the event.")


class Timeline(record_api.Timeline):
    events: list[VerifiedEntry] = Field(  # type: ignore[assignment]
        description="Every event of the order, in time order.")
