"""Inbound mail, pure: who may send, what the mail says, and what of it may travel on.

No I/O, no clock: the door (:mod:`bsm_alias.door`) looks things up and passes them in. Three
decisions live here:

* :func:`authorize_sender` — is the envelope sender the other party of the alias's relationship
  (registered address, or a seller's authorized address; a blocked one is refused)?
* :func:`authenticate_sender` — does the sender's domain vouch for the mail, as mail providers
  judge it (DMARC, RFC 7489): SPF ``pass`` for the envelope sender, whose domain is the header
  ``From``'s, or a DKIM signature that verifies and is aligned with the ``From`` domain. Mail
  that claims a registered or authorized address without either is refused (``5.7.26``): an
  address alone proves nothing, anybody can write one.
* :func:`parse` and :func:`scrub` — the standard ``email`` package reads the MIME (bodies,
  charsets, transfer encodings, attachments) within the door's bounds (parts, nesting, header
  fields and their length: :func:`read_mime`), into storable text and one-line header values
  within the contract's limits, or a refusal; scrubbing rewrites the parties' real addresses
  (and the sender's real name where it sits next to one) to their aliases.

Every refusal is an SMTP reply given in the dialogue (:class:`Refusal`), never a bounce mail:
the sender of a refused mail is unverified, and a bounce would be backscatter.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.feedparser import BytesFeedParser
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from email.utils import getaddresses
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

from bsm_shared import attachments as file_types
from bsm_shared.contract.limits import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_BODY_BYTES,
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_MAIL_BYTES,
    body_bytes,
    clean_filename,
    clean_header_text,
)
from bsm_shared.runtime.links import strip_action_links
from bsm_shared.text import normalize

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
SPF_FAIL = Refusal(
    550, "5.7.23", "spf_fail",
    "SPF fails for the sender's domain and no DKIM signature of it verifies (A4): the mail did "
    "not come from a server allowed to send for it. Send through your provider's own server.",
)
DNS_TEMPORARY = Refusal(
    451, "4.4.3", "dns_temporary",
    "The sender's domain could not be checked (a temporary DNS failure for SPF, A4): try again "
    "later.",
)
BAD_FROM = Refusal(
    550, "5.7.1", "header_from_missing",
    "The message needs exactly one From address (RFC 5322): send it from an ordinary mail client.",
)
UNREADABLE = Refusal(
    550, "5.6.0", "unreadable_mime",
    "The message could not be read as MIME (RFC 5322/2045): send it from an ordinary mail client.",
)


# Limits (``bsm_shared.contract.limits`` and the door's own MIME bounds below): each refusal
# names the limit, the mail's figure and what the sender can do.


def _too_big(reason_code: str, text: str) -> Refusal:
    return Refusal(552, "5.3.4", reason_code, text)  # RFC 3463: message too big for system


def _malformed(reason_code: str, text: str) -> Refusal:
    return Refusal(550, "5.6.0", reason_code, text)  # RFC 3463: other or undefined media error


def mail_too_large(limit: int = MAX_MAIL_BYTES) -> Refusal:
    """More than the door takes in the SMTP dialogue (the ``SIZE`` it announces)."""
    return _too_big("mail_too_large", f"Message too large: the door accepts at most {limit:,} "
                    "bytes of mail. Send large files in several messages.")


def body_too_large(size: int) -> Refusal:
    return _too_big("message_too_large", f"Message body too large: {size:,} bytes of text and "
                    f"HTML; the limit is {MAX_BODY_BYTES:,}. Send long content as an attachment.")


def too_many_attachments(count: int) -> Refusal:
    return _too_big("too_many_attachments", f"Too many attachments: {count:,}, inline images "
                    f"included; the limit is {MAX_ATTACHMENTS}. Send the files in several "
                    "messages.")


def attachments_too_large(total: int) -> Refusal:
    return _too_big("attachments_too_large", f"Attachments too large: {total:,} bytes in total; "
                    f"the limit is {MAX_ATTACHMENT_BYTES:,} ({MAX_ATTACHMENT_BYTES // 2**20} MB, "
                    "B4). Send the files in several messages.")


def too_many_parts() -> Refusal:
    return _too_big("too_many_parts", f"Too many MIME parts: more than {MAX_MIME_PARTS}, while a "
                    f"message carries at most {MAX_ATTACHMENTS} attachments. Send the files in "
                    "several messages.")


def event_too_large(size: int) -> Refusal:
    """The finished ``MessageSubmitted`` would not fit in one Kafka record."""
    return _too_big("event_too_large", f"Message too large to carry: it would be {size:,} bytes "
                    f"as an event; the limit is {MAX_EVENT_BYTES:,}. Shorten the text or send it "
                    "as an attachment.")


def mime_too_deep(depth: int) -> Refusal:
    return _malformed("mime_too_deep", f"MIME parts nested {depth} levels deep; the door reads "
                      f"at most {MAX_MIME_DEPTH}. Send the message from an ordinary mail client, "
                      "or forward it as an attachment.")


def too_many_header_fields() -> Refusal:
    return _malformed("too_many_header_fields", f"Too many header fields: more than "
                      f"{MAX_HEADER_FIELDS:,} in the message. Send it from an ordinary mail "
                      "client.")


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


def sender_unauthenticated(domain: str, spf_result: str) -> Refusal:
    """The mail claims an address of ``domain`` and nothing shows the domain sent it."""
    domain = "".join(c for c in domain if "!" <= c <= "~")[:255]  # one line of the reply
    return Refusal(
        550, "5.7.26", "sender_unauthenticated",
        f"Sender not authenticated (A4): SPF does not pass for {domain} ({spf_result or 'none'}) "
        f"and no DKIM signature of {domain} verifies, so nothing shows this mail comes from the "
        "address it claims. Send through your provider's server, have your domain publish SPF "
        "(and sign with DKIM), or write from the marketplace's message center.",
    )


#: How many DKIM signatures aligned with the From domain the door verifies in one mail (each is a
#: DNS lookup and a hash of the body; a real mail has one or two).
MAX_DKIM_SIGNATURES = 5


@lru_cache(maxsize=1)
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list ships with the package: nothing is fetched


def organizational_domain(domain: str) -> str:
    """The registered domain of ``domain`` (RFC 7489 §3.2, with the Public Suffix List):
    ``mail.shop.example`` → ``shop.example``; a public suffix itself stays as it is."""
    domain = domain.strip().rstrip(".").lower()
    return _public_suffixes().privatesuffix(domain) or domain


def aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC's relaxed alignment: both domains have the same organizational domain."""
    if not signing_domain or not from_domain:
        return False
    return organizational_domain(signing_domain) == organizational_domain(from_domain)


def authenticate_sender(
    envelope_sender: str, header_from: str | None, spf_result: str,
    dkim_domains: Iterable[str] = (),
) -> Refusal | None:
    """Whether the mail may stand as the envelope sender's (A4), as mail providers judge a
    sender (DMARC): exactly one header ``From``, at the envelope sender's domain (another
    address there is a colleague's), and the domain vouches for the mail — a DKIM signature
    that verified (``dkim_domains``: the ``d=`` of each) aligned with the ``From`` domain, or
    SPF ``pass`` for the envelope sender. An SPF ``fail`` without aligned DKIM says the mail
    came from a server the domain does not allow; no verdict at all says nothing, and is
    refused the same (``5.7.26``); a DNS failure while checking is temporary (``451``)."""
    if header_from is None:
        return BAD_FROM
    domain = address_domain(header_from)
    if domain != address_domain(envelope_sender):
        return FROM_OTHER_DOMAIN
    if any(aligned(d, domain) for d in dkim_domains) or spf_result == "pass":
        return None
    if spf_result == "fail":
        return SPF_FAIL
    if spf_result == "temperror":
        return DNS_TEMPORARY
    return sender_unauthenticated(domain, spf_result)


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

#: How many MIME parts (containers included) the door reads in one mail. A message carries at
#: most MAX_ATTACHMENTS attachments plus its bodies and their containers; more parts than this
#: cannot be a message within the limits, and parsing them costs the door CPU for nothing (the
#: email package needs ~1 ms a part: 10,000 parts were 9 s).
MAX_MIME_PARTS = 5 * MAX_ATTACHMENTS

#: How deep MIME parts may nest. Real mail nests a few levels (signed → mixed → forwarded
#: message → alternative → related); the email package reads nesting recursively and fails
#: near 1,000 levels.
MAX_MIME_DEPTH = 32

#: The longest header field the door interprets (Subject, From, Content-Type, ...), in
#: characters; longer ones are cut (a defect noted). The email package's header parser takes
#: time that grows with the square of a field's length (a 2 MB Subject took 90 s, a 64 KB
#: Content-Type 10 s), and no header the door reads is legitimately longer: an RFC 5322 line is
#: at most 998 characters. Message-ID, In-Reply-To and References are read as they are (only
#: message ids are taken out of them), whatever their length.
MAX_HEADER_CHARS = 2000

#: How many header fields one mail may have, all its parts together. Real mail has tens to a
#: few hundred (a forwarded message brings its own).
MAX_HEADER_FIELDS = 2000

#: Header fields read as they are, never through the email package's header parser.
_RAW_HEADERS = frozenset({"message-id", "in-reply-to", "references"})

#: Python codecs that are no mail charset: escapes that can produce U+0000 and lone surrogates,
#: and decoders that take quadratic time (``punycode``: 14 s for 200 KB). A part declaring one
#: is read like a part with an unknown charset.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})

#: A message id as RFC 5322 writes it: printable ASCII between angle brackets.
_MSGID = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]+)>")
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Attachment:
    filename: str  # one safe line (``clean_filename``)
    content: bytes
    content_type: str  # judged from the content (magic bytes), not from the name or header
    inline: bool


@dataclass(frozen=True)
class ParsedMail:
    subject: str  # one safe line (``clean_header_text``)
    text: str | None  # decoded; no U+0000, no lone surrogate (see :func:`storable`)
    html: str | None  # the same, reduced to the content of ``<body>``
    attachments: list[Attachment]
    header_from: list[tuple[str, str]]  # (display name, address) of every From address
    message_id: str | None
    reply_targets: list[str] = field(default_factory=list)  # In-Reply-To first, then References
    defects: tuple[str, ...] = ()  # what was wrong with the MIME and read as well as it could be


def storable(text: str) -> str:
    """``text`` as every stage can store and encode it: U+0000 removed, each lone surrogate
    replaced by U+FFFD. Both arrive in decoded mail (a NUL byte in the data, a ``utf-7`` or
    escape charset); no mail client shows either, and the contract refuses events that hold
    them (``bsm_shared.contract.limits.unstorable``)."""
    if not _UNSTORABLE_CHARS.search(text):
        return text
    return _UNSTORABLE_CHARS.sub(lambda m: "" if m.group(0) == "\x00" else "\ufffd", text)


def header_text(value: object) -> str:
    """A decoded header value as one storable line (subject, a file name's source)."""
    return clean_header_text(storable(str(value)))


def message_ids(value: object) -> list[str]:
    """The message ids in a Message-ID / In-Reply-To / References value (printable ASCII only:
    anything else in them is no id and is skipped)."""
    return _MSGID.findall(str(value))


class _OverBound(Exception):
    """Parsing stopped at one of the door's bounds (raised inside the email package's parser,
    caught in :func:`read_mime`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason_code)
        self.refusal = refusal


class _DoorPolicy(EmailPolicy):
    """``email.policy.default`` with the door's bounds. One instance per mail:

    * at most :data:`MAX_HEADER_FIELDS` header fields in the whole mail (the email package
      looks a header up by scanning them all: 300,000 fields took seconds per lookup);
    * a field the door reads is parsed once (the email package parses it again on every access,
      and reads Content-Type many times per part), at most :data:`MAX_HEADER_CHARS` of it
      (``cut``), and message-id fields are not parsed at all;
    * a field the email package's parser crashes on (it raises ``IndexError`` on some malformed
      parameter lists) is read as its first item only (``Content-Disposition: attachment``),
      or as empty (``broken``): a defect, not an error.
    """

    parsed: dict[tuple[str, str], Any] | None = None
    cut: set[str] | None = None
    broken: set[str] | None = None
    fields: list[int] | None = None

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        assert self.fields is not None
        self.fields[0] += 1
        if self.fields[0] > MAX_HEADER_FIELDS:
            raise _OverBound(too_many_header_fields())
        return super().header_source_parse(sourcelines)  # type: ignore[no-any-return]

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if hasattr(value, "name") or name.lower() in _RAW_HEADERS:
            return value
        assert self.parsed is not None and self.cut is not None and self.broken is not None
        key = (name, value)
        if key not in self.parsed:
            if len(value) > MAX_HEADER_CHARS:
                self.cut.add(name)
                value = value[:MAX_HEADER_CHARS]
            try:
                self.parsed[key] = super().header_fetch_parse(name, value)
            except Exception:  # noqa: BLE001 - the stdlib parser's own bugs on malformed input
                self.broken.add(name)
                first = value.split(";", 1)[0]
                try:
                    self.parsed[key] = super().header_fetch_parse(name, first)
                except Exception:  # noqa: BLE001 - as above
                    self.parsed[key] = super().header_fetch_parse(name, "")
        return self.parsed[key]


def read_mime(raw: bytes) -> EmailMessage | Refusal:
    """The MIME structure of ``raw`` within the door's bounds (at most :data:`MAX_MIME_PARTS`
    parts nested at most :data:`MAX_MIME_DEPTH` deep, :data:`MAX_HEADER_FIELDS` header fields),
    or the refusal that names the bound. The email package is lenient: missing boundaries,
    broken base64, 8-bit bytes in headers become defects (:func:`defects`), not errors."""
    parts = 0

    def new_part(policy: Any) -> EmailMessage:
        nonlocal parts
        parts += 1
        if parts > MAX_MIME_PARTS:
            raise _OverBound(too_many_parts())
        return EmailMessage(policy=policy)

    parser = BytesFeedParser(new_part, policy=_DoorPolicy(parsed={}, cut=set(), broken=set(),
                                                          fields=[0]))
    parts = 0  # the parser calls the factory once to learn its signature
    try:
        parser.feed(raw)
        message = parser.close()
    except _OverBound as over:
        return over.refusal
    assert isinstance(message, EmailMessage)
    deepest = 0
    stack: list[tuple[Message, int]] = [(message, 1)]
    while stack:  # not walk(): it recurses, and the depth is what is being checked
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        if part.is_multipart():  # (a leaf's get_payload() would decode it with its charset)
            stack.extend((p, depth + 1) for p in part.get_payload() if isinstance(p, Message))
        elif part.get_content_maintype() == "multipart":
            # A multipart whose boundary never came is text to the parser (a defect notes it);
            # declared multipart, get_body() would iterate its characters as parts (CPython
            # 3.11 raises AttributeError). Read it as the text it is.
            del part["Content-Type"]
            part["Content-Type"] = "text/plain"
    if deepest > MAX_MIME_DEPTH:
        return mime_too_deep(deepest)
    return message


def defects(message: Message) -> list[str]:
    """What was wrong with a mail read by :func:`read_mime`, once its parts were read: the email
    package's defects (by class name, e.g. ``StartBoundaryNotFoundDefect``) and the header
    fields the door cut or could not parse. No content: these go to the log."""
    found = [type(d).__name__ for part in message.walk() for d in part.defects]
    policy = message.policy
    if isinstance(policy, _DoorPolicy):
        assert policy.cut is not None and policy.broken is not None
        found += [f"{name} cut to {MAX_HEADER_CHARS} characters" for name in sorted(policy.cut)]
        found += [f"{name} unreadable" for name in sorted(policy.broken)]
    return list(dict.fromkeys(found))


def _charset(part: Message) -> str | None:
    """The Python codec of a part's declared charset, or None if there is none or it is no
    text encoding of mail."""
    declared = part.get_content_charset()
    if not declared:
        return None
    try:
        info = codecs.lookup(declared)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        return None
    return None if info.name in _NOT_CHARSETS else info.name


def decode_text(part: Message, defects: list[str] | None = None) -> str:
    """A text part's content as storable text. The declared charset when Python knows it (bytes
    it cannot map become U+FFFD); with none or an unknown one (``x-unknown``), UTF-8 if the
    bytes are UTF-8, else Latin-1 — every byte maps to some character, so nothing is lost."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    codec = _charset(part)
    if codec is not None:
        try:
            return storable(data.decode(codec, "replace"))
        except (LookupError, UnicodeError):  # no text codec (rot13), or one that cannot replace
            pass
    if part.get_content_charset() and defects is not None:
        defects.append("UnknownCharset")
    try:
        return storable(data.decode("utf-8"))
    except UnicodeDecodeError:
        return storable(data.decode("latin-1"))


_BODY_OPEN = re.compile(r"<body\b", re.I)
_BODY_CLOSE = re.compile(r"</body\s*+>", re.I)
_HEAD_OPEN = re.compile(r"<head\b", re.I)
_HEAD_CLOSE = re.compile(r"</head\s*+>", re.I)
# `[^<>]` rather than `[^>]`: a tag that never closes stops the search at the next tag, so
# many unclosed tags cost linear, not quadratic, time.
_WRAPPER_TAGS = re.compile(r"<!DOCTYPE[^<>]*+>|</?html\b[^<>]*+>", re.I)


def body_fragment(html: str) -> str:
    """The content of a mail client's HTML document: what is inside ``<body>``. Clients wrap
    the message in a whole document whose ``<head>`` (``<meta>``, ``<style>``, generator tags)
    is no part of what the sender wrote and names their software; the relayed message is a
    fragment that delivery wraps again.

    Hand-written with searches that only move forward (linear time, whatever the input): an
    HTML parser would rewrite the markup policy judges, and the earlier regular expressions took
    minutes on 200 KB of unclosed ``<head`` tags."""
    opened = _BODY_OPEN.search(html)
    if opened is not None:
        start = html.find(">", opened.end())
        if start >= 0:
            closed = _BODY_CLOSE.search(html, start + 1)
            return html[start + 1:closed.start() if closed else len(html)].strip()
    kept, pos = [], 0
    while (head := _HEAD_OPEN.search(html, pos)) is not None:
        end = _HEAD_CLOSE.search(html, head.end())
        if end is None:
            break
        kept.append(html[pos:head.start()])
        pos = end.end()
    kept.append(html[pos:])
    return _WRAPPER_TAGS.sub("", "".join(kept)).strip()


def check_size(text: str | None, html: str | None, attachment_sizes: list[int]) -> Refusal | None:
    """Whether a message fits what the stages carry (``bsm_shared.contract.limits``): its text
    and HTML together, the number of its attachments and their total size."""
    size = body_bytes(text, html)
    if size > MAX_BODY_BYTES:
        return body_too_large(size)
    if len(attachment_sizes) > MAX_ATTACHMENTS:
        return too_many_attachments(len(attachment_sizes))
    total = sum(attachment_sizes)
    if total > MAX_ATTACHMENT_BYTES:
        return attachments_too_large(total)
    return None


def parse(raw: bytes) -> ParsedMail | Refusal:
    """What a mail says, as storable text within the limits, or why the door refuses it (a
    :class:`Refusal`; nothing else is raised, whatever the bytes)."""
    mail = read_mime(raw)
    if isinstance(mail, Refusal):
        return mail
    noted: list[str] = []
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    text = decode_text(text_part, noted) if text_part is not None else None
    html = decode_text(html_part, noted) if html_part is not None else None
    bodies = {id(p) for p in (text_part, html_part) if p is not None}
    attachments: list[Attachment] = []
    for part in mail.walk():
        if part.is_multipart() or id(part) in bodies:
            continue
        if part.get_content_maintype() == "text" and part.get_content_disposition() is None:
            continue  # an alternative body we did not pick (e.g. text/enriched)
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = clean_filename(part.get_filename(),
                                  fallback=f"attachment-{len(attachments) + 1}")
        attachments.append(Attachment(
            # B4's list, judged from the content (bsm_shared.attachments): a type not on it is
            # labelled as what it is, and policy refuses the message naming the file (C4).
            filename=filename, content=content,
            content_type=file_types.content_type(file_types.judge(content, filename)),
            inline=part.get_content_disposition() != "attachment",
        ))
    html = body_fragment(html) if html is not None else None
    refused = check_size(text, html, [len(a.content) for a in attachments])
    if refused is not None:
        return refused  # before scrubbing, which takes time that grows with the size
    in_reply = [i for v in mail.get_all("In-Reply-To", []) for i in message_ids(v)]
    answered = set(in_reply)
    refs = [i for v in mail.get_all("References", []) for i in message_ids(v)
            if i not in answered]
    return ParsedMail(
        subject=header_text(mail.get("Subject", "")),
        text=text,
        html=html,
        attachments=attachments,
        header_from=[(storable(n), storable(a)) for n, a in
                     getaddresses([str(v) for v in mail.get_all("From", [])]) if a],
        message_id=(message_ids(mail.get("Message-ID", "")) or [None])[0],
        # Reverse References so the nearest ancestor comes right after In-Reply-To.
        reply_targets=in_reply + list(reversed(refs)),
        defects=tuple(dict.fromkeys(defects(mail) + noted)),
    )


@dataclass(frozen=True)
class Scrubbed:
    """What of a mail may travel on: subject, bodies and attachments with the parties' real
    addresses and names replaced (:func:`scrub`), within the limits."""

    subject: str
    text: str | None
    html: str | None
    attachments: list[Attachment]


def scrub_mail(
    parsed: ParsedMail, addresses: dict[str, str], names: dict[str, str]
) -> Scrubbed | Refusal:
    """``parsed`` scrubbed, or the refusal if scrubbing made it exceed a limit (an alias is
    longer than most addresses it replaces)."""

    def scrubbed(value: str | None) -> str | None:
        # A reply quotes the mail it answers, with the recipient's signed action links: those
        # are the replier's, never the other party's to click (``links.strip_action_links``).
        return None if value is None else strip_action_links(scrub(value, addresses, names))

    attachments = [
        Attachment(
            filename=clean_filename(scrub(a.filename, addresses, names)),
            content=scrub_text_attachment(a.content, a.content_type, addresses, names),
            content_type=a.content_type, inline=a.inline,
        )
        for a in parsed.attachments
    ]
    text, html = scrubbed(parsed.text), scrubbed(parsed.html)
    refused = check_size(text, html, [len(a.content) for a in attachments])
    if refused is not None:
        return refused
    return Scrubbed(subject=clean_header_text(scrub(parsed.subject, addresses, names)),
                    text=text, html=html, attachments=attachments)


def reply_target(parsed: ParsedMail, mail_domain: str) -> str | None:
    """Our message id the mail answers: the first In-Reply-To/References id at our domain
    (``<message_id@domain>``, as delivery writes it); foreign ids are the sender's own."""
    for target in parsed.reply_targets:
        local, _, domain = target.rpartition("@")
        if local and len(local) <= MAX_ID_CHARS and domain.lower() == mail_domain.lower():
            return local
    return None


# ---------------------------------------------------------------------------------------------
# Scrubbing (B2, A6)
# ---------------------------------------------------------------------------------------------

# What may stand between a display name and the address it names: `Name <a@b>`,
# `"Name" <a@b>`, `Name &lt;a@b&gt;` (HTML quotes: `<` once normalised), `Name [mailto:a@b]`
# (Outlook), and a signature's name on the line (or `<br>`) right before the address.
# Possessive (`*+`) and `[^<>]`: a name followed by a long run of spaces, or by many tags that
# never close, would otherwise make the search backtrack quadratically (8,000 spaces took 7 s).
_OPENERS = r'\s*+(?:<br\s*+/?>\s*+)?(?:<|\[mailto:|\(|<a\s[^<>]*+>)?\s*+(?:mailto:)?'


def scrub(text: str, addresses: dict[str, str], names: dict[str, str]) -> str:
    """``text`` with every real address replaced by its alias (case-insensitive, wherever it
    appears: headers quoted in the body, signatures, ``mailto:`` links) and every real name
    that stands as the display name of one of those addresses replaced by the public name.

    Addresses are found in the text as a reader sees it (:func:`bsm_shared.text.normalize`, the
    same normalising policy's C4 uses): written with HTML character references (``&#64;``,
    ``&commat;``), percent-encoded (``%40``), with zero-width or full-width characters, or
    spelled out ("ana at mail dot example", "ana [arroba] mail [punto] es"); what is replaced is
    the span of the original that shows the address, so the markup around it stays as sent.

    ``addresses`` maps real address → alias; ``names`` maps real name → public display name."""
    norm = normalize(text)
    seen = norm.text
    found: list[tuple[int, int, str]] = []  # in the normalised text, the first ones win
    for real_name, public in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if len(real_name.strip()) < 2:
            continue
        for real in addresses:
            pattern = re.compile(
                r'"?' + re.escape(real_name.strip()) + r'"?(?=' + _OPENERS + re.escape(real)
                + r")",
                re.IGNORECASE,
            )
            found += [(m.start(), m.end(), public) for m in pattern.finditer(seen)]
    for real, alias in sorted(addresses.items(), key=lambda kv: -len(kv[0])):
        found += [(m.start(), m.end(), alias)
                  for m in re.finditer(re.escape(real), seen, re.IGNORECASE)]
    if not found:
        return text
    starts: list[int] = []
    ends: list[int] = []
    edits: list[tuple[int, int, str]] = []
    for start, end, new in found:
        i = bisect.bisect_left(starts, start)
        if (i > 0 and ends[i - 1] > start) or (i < len(starts) and starts[i] < end):
            continue  # inside what an earlier (longer, or name) match replaces
        starts.insert(i, start)
        ends.insert(i, end)
        edits.insert(i, (start, end, new))
    parts: list[str] = []
    pos = 0
    for start, end, new in edits:
        lo, hi = norm.span(start, end)
        if lo < pos:
            continue
        parts += [text[pos:lo], new]
        pos = hi
    parts.append(text[pos:])
    return "".join(parts)


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
