"""Inbound mail, pure: who may send, what the mail says, and what of it may travel on.

No I/O, no clock: the door (:mod:`bsm_alias.door`) looks things up and passes them in. Three
decisions live here:

* :func:`authorize_sender` — is the envelope sender the other party of the alias's relationship
  (registered address, or a seller's authorized address; a blocked one is refused)?
* :func:`check_header_from` — a header ``From`` that differs from the envelope sender is trusted
  only for the same domain and only when SPF passes; an SPF ``fail`` is refused in any case.
* :func:`parse` and :func:`scrub` — the standard ``email`` package reads the MIME (bodies,
  charsets, transfer encodings, attachments); scrubbing rewrites the parties' real addresses
  (and the sender's real name where it sits next to one) to their aliases.

Every refusal is an SMTP reply given in the dialogue (:class:`Refusal`), never a bounce mail:
the sender of a refused mail is unverified, and a bounce would be backscatter.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses

import filetype

from .core import Relationship


@dataclass(frozen=True)
class Refusal:
    """An SMTP refusal: code, enhanced status, and text that says the rule and what to do."""

    code: int
    status: str
    reason_code: str
    text: str

    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"


UNKNOWN_ALIAS = Refusal(
    550, "5.1.1", "unknown_alias",
    "No such alias here (A3): write to the alias the marketplace's mail came from.",
)
UNKNOWN_SENDER = Refusal(
    550, "5.7.1", "unknown_sender",
    "Sender not registered (A4): send from the address on your marketplace account or, for "
    "sellers, from an authorized sender address.",
)
BLOCKED_SENDER = Refusal(
    550, "5.7.1", "blocked_sender",
    "This address is blocked as a sender for the seller account (A4): use an authorized "
    "address, or ask the account owner to approve it.",
)
NOT_IN_RELATIONSHIP = Refusal(
    550, "5.7.1", "alias_not_for_sender",
    "This alias belongs to a conversation you are not part of (A3): reply to the aliases of "
    "your own conversations.",
)
NULL_SENDER = Refusal(
    550, "5.7.1", "null_sender",
    "Mail without a sender is accepted only as a delivery report for marketplace mail (D2).",
)
RETURN_PATH_FORGED = Refusal(
    550, "5.7.1", "return_path_not_genuine",
    "This return path was not issued by the marketplace (its signature does not verify) (D1): "
    "delivery reports are accepted only at the return path of a mail we sent.",
)
RETURN_PATH_EXPIRED = Refusal(
    550, "5.1.1", "return_path_expired",
    "This return path has expired (D1): delivery reports are accepted for a limited time after "
    "the mail was sent; nothing to do.",
)
ONE_ALIAS = Refusal(
    452, "4.5.3", "one_alias_per_message",
    "One alias per message (A3): send the other recipients a separate message.",
)
FROM_OTHER_DOMAIN = Refusal(
    550, "5.7.1", "header_from_mismatch",
    "The From header differs from the envelope sender's domain (A4): send from your registered "
    "address without rewriting the sender.",
)
FROM_WITHOUT_SPF = Refusal(
    550, "5.7.23", "header_from_unverified",
    "The From header differs from the envelope sender and SPF does not pass for it (A4): send "
    "from your registered address, or publish SPF for your mail server.",
)
SPF_FAIL = Refusal(
    550, "5.7.23", "spf_fail",
    "SPF fails for the sender's domain (A4): the mail did not come from a server allowed to "
    "send for it. Send through your provider's own server.",
)
BAD_FROM = Refusal(
    550, "5.7.1", "header_from_missing",
    "The message needs exactly one From address (RFC 5322): send it from an ordinary mail client.",
)
@dataclass(frozen=True)
class SenderFacts:
    """What the address book knows about an envelope sender (looked up by blind index)."""

    registered_party_ids: frozenset[str] = frozenset()
    authorized_for: frozenset[str] = frozenset()  # seller ids that approved the address
    blocked_for: frozenset[str] = frozenset()  # seller ids that blocked it


def authorize_sender(
    relationship: Relationship, alias_owner_id: str, facts: SenderFacts
) -> str | Refusal:
    """The party id the mail is sent as, or why it is refused.

    Only the other party of the alias's relationship can write to an alias; a seller also via
    an authorized address, and an address the seller blocked is refused even if it is the
    registered one (the account owner blocked it on purpose)."""
    other = (
        relationship.seller_id if alias_owner_id == relationship.buyer_id else relationship.buyer_id
    )
    is_seller = other == relationship.seller_id
    if is_seller and other in facts.blocked_for:
        return BLOCKED_SENDER
    if other in facts.registered_party_ids:
        return other
    if is_seller and other in facts.authorized_for:
        return other
    if facts.registered_party_ids or facts.authorized_for:
        return NOT_IN_RELATIONSHIP
    return UNKNOWN_SENDER


def address_domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def check_header_from(envelope_sender: str, header_from: str | None, spf_result: str) -> Refusal | None:
    """Whether the header ``From`` may stand (A4): identical to the envelope sender, or the same
    domain with SPF ``pass``; and never when SPF ``fail``s for the envelope sender."""
    if spf_result == "fail":
        return SPF_FAIL
    if header_from is None:
        return BAD_FROM
    if header_from.strip().lower() == envelope_sender.strip().lower():
        return None
    if address_domain(header_from) != address_domain(envelope_sender):
        return FROM_OTHER_DOMAIN
    return None if spf_result == "pass" else FROM_WITHOUT_SPF


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str  # judged from the content (magic bytes), not from the name or header
    inline: bool


@dataclass(frozen=True)
class ParsedMail:
    subject: str
    text: str | None
    html: str | None
    attachments: list[Attachment]
    header_from: list[tuple[str, str]]  # (display name, address) of every From address
    message_id: str | None
    reply_targets: list[str] = field(default_factory=list)  # In-Reply-To first, then References


_MSGID = re.compile(r"<([^<>\s]+)>")


def _decode(part: EmailMessage) -> str:
    """A text part's content; a charset Python does not know is read as Latin-1 rather than
    losing the message (every byte maps to some character)."""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("latin-1")


_BODY = re.compile(r"<body\b[^>]*>(.*?)(?:</body\s*>|\Z)", re.S | re.I)
_WRAPPER = re.compile(r"<!DOCTYPE[^>]*>|<head\b.*?</head\s*>|</?html\b[^>]*>", re.S | re.I)


def body_fragment(html: str) -> str:
    """The content of a mail client's HTML document: what is inside ``<body>``. Clients wrap
    the message in a whole document whose ``<head>`` (``<meta>``, ``<style>``, generator tags)
    is no part of what the sender wrote and names their software; the relayed message is a
    fragment that delivery wraps again."""
    found = _BODY.search(html)
    return (found.group(1) if found else _WRAPPER.sub("", html)).strip()


def judge_type(content: bytes) -> str:
    """The MIME type of an attachment from its bytes (magic numbers), never from its name."""
    guess = filetype.guess_mime(content)
    if guess:
        return guess
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def parse(raw: bytes) -> ParsedMail:
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    bodies = {id(p) for p in (text_part, html_part) if p is not None}
    attachments: list[Attachment] = []
    for part in mail.walk():
        if part.is_multipart() or id(part) in bodies:
            continue
        if part.get_content_maintype() == "text" and part.get_content_disposition() is None:
            continue  # an alternative body we did not pick (e.g. text/enriched)
        content = part.get_payload(decode=True) or b""
        name = part.get_filename() or f"attachment-{len(attachments) + 1}"
        attachments.append(Attachment(
            filename=name[:255], content=content, content_type=judge_type(content),
            inline=part.get_content_disposition() != "attachment",
        ))
    targets: list[str] = []
    for header in ("In-Reply-To", "References"):
        for value in mail.get_all(header, []):
            targets.extend(_MSGID.findall(str(value)))
    # Reverse References so the nearest ancestor comes right after In-Reply-To.
    in_reply = _MSGID.findall(str(mail.get("In-Reply-To", "")))
    refs = [t for t in targets if t not in in_reply]
    return ParsedMail(
        subject=str(mail.get("Subject", "")).strip()[:998],
        text=_decode(text_part) if text_part is not None else None,
        html=body_fragment(_decode(html_part)) if html_part is not None else None,
        attachments=attachments,
        header_from=[(n, a) for n, a in getaddresses([str(v) for v in mail.get_all("From", [])])
                     if a],
        message_id=(_MSGID.findall(str(mail.get("Message-ID", ""))) or [None])[0],
        reply_targets=in_reply + list(reversed(refs)),
    )


def reply_target(parsed: ParsedMail, mail_domain: str) -> str | None:
    """Our message id the mail answers: the first In-Reply-To/References id at our domain
    (``<message_id@domain>``, as delivery writes it); foreign ids are the sender's own."""
    for target in parsed.reply_targets:
        local, _, domain = target.rpartition("@")
        if local and domain.lower() == mail_domain.lower():
            return local
    return None


# ---------------------------------------------------------------------------------------------
# Scrubbing (B2, A6)
# ---------------------------------------------------------------------------------------------

# What may stand between a display name and the address it names: `Name <a@b>`,
# `"Name" <a@b>`, `Name &lt;a@b&gt;` (HTML quotes), `Name [mailto:a@b]` (Outlook), and a
# signature's name on the line (or `<br>`) right before the address.
_OPENERS = r'\s*(?:<br\s*/?>\s*)?(?:<|&lt;|\[mailto:|\(|<a\s[^>]*>)?\s*(?:mailto:)?'


#: Named HTML character references a mail client may use inside an address (HTML 5 names).
_NAMED = {"@": ("commat",), ".": ("period",), "-": ("hyphen", "dash"), "_": ("lowbar",),
          "+": ("plus",)}


def _char(c: str) -> str:
    """A pattern for one character of an address, also written as an HTML character reference
    (``&#64;``, ``&#x40;``, ``&commat;``): the HTML part of a mail shows those as the character,
    so an address spelled with them is the same address to the reader."""
    codes = {ord(c.lower()), ord(c.upper())}
    forms = [re.escape(c)]
    forms += [f"&#0*{n};" for n in sorted(codes)]
    forms += [f"&#[xX]0*{n:x};" for n in sorted(codes)]
    forms += [f"&{name};" for name in _NAMED.get(c, ())]
    return "(?:" + "|".join(forms) + ")"


def address_pattern(address: str) -> str:
    """A regular expression matching ``address`` literally or with any of its characters
    written as HTML character references (match case-insensitively). Hand-written: the HTML
    cannot be unescaped as a whole without changing the markup around the address."""
    return "".join(_char(c) for c in address)


def scrub(text: str, addresses: dict[str, str], names: dict[str, str]) -> str:
    """``text`` with every real address replaced by its alias (case-insensitive, wherever it
    appears: headers quoted in the body, signatures, ``mailto:`` links) and every real name
    that stands as the display name of one of those addresses replaced by the public name.

    ``addresses`` maps real address → alias; ``names`` maps real name → public display name."""
    for real_name, public in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if len(real_name.strip()) < 2:
            continue
        for real in addresses:
            pattern = re.compile(
                r'"?' + re.escape(real_name.strip()) + r'"?(?=' + _OPENERS + address_pattern(real)
                + r")",
                re.IGNORECASE,
            )
            text = pattern.sub(lambda _m, p=public: p, text)
    for real, alias in sorted(addresses.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(address_pattern(real), lambda _m, a=alias: a, text, flags=re.IGNORECASE)
    return text


def scrub_text_attachment(
    content: bytes, content_type: str, addresses: dict[str, str], names: dict[str, str]
) -> bytes:
    """A text attachment (a forwarded note, a signature file, a .txt the client attached)
    scrubbed like the body; anything else as sent — binary formats (PDF, images, Office) are
    not rewritten (their bytes are the sender's document)."""
    if not content_type.startswith("text/"):
        return content
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content
    return scrub(text, addresses, names).encode("utf-8")


def identity_map(
    *, envelope_sender: str, header_from: list[tuple[str, str]], sender_real: str | None,
    recipient_real: str | None, sender_alias: str, recipient_alias: str, public_name: str,
) -> tuple[dict[str, str], dict[str, str]]:
    """What :func:`scrub` rewrites in one mail: every address the sender used or is registered
    with becomes the sender's alias, the recipient's registered address the recipient's alias,
    and the sender's real display name(s) the public name (business or buyer display name)."""
    addresses = {envelope_sender.lower(): sender_alias}
    names: dict[str, str] = {}
    for name, addr in header_from:
        addresses[addr.lower()] = sender_alias
        if name and name.strip().lower() != public_name.lower():
            names[name] = public_name
    if sender_real:
        addresses[sender_real.lower()] = sender_alias
    if recipient_real:
        addresses[recipient_real.lower()] = recipient_alias
    return addresses, names
