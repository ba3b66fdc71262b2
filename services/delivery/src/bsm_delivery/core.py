"""Delivery decisions, pure: the outcome of a policy decision, the mail to send, retry times."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from html import escape

from bsm_shared.contract.limits import clean_filename, clean_header_text
from bsm_shared.contract.payloads import AttachmentRef, Bounced, Delivered, PolicyChecked

#: A MIME type as ``type/subtype`` (RFC 6838 restricted names); anything else is sent as
#: ``application/octet-stream``.
_MIME_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def rejection(pc: PolicyChecked, *, now: datetime) -> Bounced:
    """A policy rejection as the message's outcome: every violation, explained."""
    first = pc.violations[0] if pc.violations else None
    explanation = " ".join(v.detail for v in pc.violations) or "The message was not approved."
    remedy = " ".join(v.remedy for v in pc.violations if v.remedy)
    return Bounced(
        message_id=pc.message_id,
        stage="policy",
        reason_code=first.code if first else "rejected",
        rule=first.rule if first else None,
        explanation=explanation,
        remedy=remedy,
        violations=list(pc.violations),
        bounced_at=now,
        submitted_at=pc.submitted_at,
        relationship_id=pc.relationship_id,
        conversation_id=pc.conversation_id,
        sender_party_id=pc.sender_party_id,
        recipient_party_id=pc.recipient_party_id,
        sender_role=pc.sender_role,
        order_id=pc.order_id,
    )


def failure(pc: PolicyChecked, *, code: str, explanation: str, remedy: str, now: datetime) -> Bounced:
    """A delivery failure as the message's outcome."""
    return Bounced(
        message_id=pc.message_id, stage="delivery", reason_code=code, rule="D2",
        explanation=explanation, remedy=remedy, bounced_at=now, submitted_at=pc.submitted_at,
        relationship_id=pc.relationship_id, conversation_id=pc.conversation_id,
        sender_party_id=pc.sender_party_id, recipient_party_id=pc.recipient_party_id,
        sender_role=pc.sender_role, order_id=pc.order_id,
    )


def email_message_id(message_id: str, domain: str) -> str:
    return f"<{message_id}@{domain}>"


# -- the signed action links of a relayed mail (E2, E4) ----------------------------------------

#: What each link says, by language (the recipient's; English otherwise): the labels of the
#: message center's own buttons.
LINK_LABELS: dict[str, dict[str, str]] = {
    "en": {"no-response-needed": "No response needed? Mark this message",
           "report": "Report this message to the marketplace"},
    "es": {"no-response-needed": "¿No necesita respuesta? Marca este mensaje",
           "report": "Denuncia este mensaje al marketplace"},
    "fr": {"no-response-needed": "Pas de réponse nécessaire ? Marquez ce message",
           "report": "Signalez ce message à la place de marché"},
    "it": {"no-response-needed": "Nessuna risposta necessaria? Contrassegna questo messaggio",
           "report": "Segnala questo messaggio al marketplace"},
    "pt": {"no-response-needed": "Não precisa de resposta? Marque esta mensagem",
           "report": "Denuncie esta mensagem ao marketplace"},
    "de": {"no-response-needed": "Keine Antwort nötig? Nachricht markieren",
           "report": "Diese Nachricht dem Marktplatz melden"},
}


def link_language(locale: str) -> str:
    """The labels' language for a BCP 47 locale (``es-MX`` → ``es``); English otherwise."""
    lang = locale.replace("_", "-").split("-")[0].lower()
    return lang if lang in LINK_LABELS else "en"


def link_actions(pc: PolicyChecked) -> tuple[str, ...]:
    """The actions the recipient can take from the mail itself: every recipient can report
    it (E4); a seller can also mark it "no response needed" (E2: the seller's inbox views and
    response times are what the mark is for)."""
    if pc.recipient_role == "seller":
        return ("no-response-needed", "report")
    return ("report",)


def _footer_text(links: Mapping[str, str], lang: str) -> str:
    # Below the signature separator ("-- ", RFC 3676 §4.3): mail clients that quote a reply
    # leave signatures out, so the recipient's links do not travel back to the sender.
    labels = LINK_LABELS[lang]
    return "\n\n-- \n" + "\n".join(f"{labels[a]}: {url}" for a, url in links.items()) + "\n"


def _footer_html(links: Mapping[str, str], lang: str) -> str:
    labels = LINK_LABELS[lang]
    items = "".join(f'<li><a href="{escape(url)}">{escape(labels[a])}</a></li>'
                    for a, url in links.items())
    return f'<hr><ul class="bsm-actions">{items}</ul>'


def compose(
    pc: PolicyChecked, *, sender_name: str, domain: str, now: datetime,
    files: Sequence[tuple[AttachmentRef, bytes]] = (), links: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The relayed mail: from the sender's alias with their display name (A6; the event
    carries it sealed, the caller passes it opened — empty for an erased party), to the
    recipient's alias; the real address is only the SMTP envelope recipient. ``files``: the
    message's attachments with their bytes (from the blob store), attached as sent, so a
    recipient answering from a mail client gets them too. ``links``: the signed action links
    of :func:`link_actions` (action → URL, made by the caller with the link key), put below
    the text and the HTML in the recipient's language; a name not in :data:`LINK_LABELS` is
    left out."""
    # Every value that becomes a header is one clean line here, whatever came in: a CR/LF in
    # a name or an id from an outside producer must neither inject a header nor make
    # ``email`` refuse the whole mail.
    mail = EmailMessage()
    mail["From"] = formataddr((clean_header_text(sender_name), pc.sender_alias))
    mail["To"] = pc.recipient_alias
    mail["Subject"] = clean_header_text(pc.subject) or "(no subject)"
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = email_message_id(pc.message_id, domain)
    if pc.in_reply_to:
        parent = email_message_id(pc.in_reply_to, domain)
        mail["In-Reply-To"] = parent
        mail["References"] = parent
    mail["X-Bsm-Conversation"] = clean_header_text(pc.conversation_id)
    if pc.order_id:
        mail["X-Bsm-Order"] = clean_header_text(pc.order_id)
    offered = {a: url for a, url in (links or {}).items() if a in LINK_LABELS["en"]}
    lang = link_language(pc.recipient_locale)
    text_footer = _footer_text(offered, lang) if offered else ""
    html_footer = _footer_html(offered, lang) if offered else ""
    if pc.text is not None:
        mail.set_content(pc.text + text_footer)
        if pc.html is not None:
            mail.add_alternative(pc.html + html_footer, subtype="html")
    else:
        mail.set_content((pc.html or "") + html_footer, subtype="html")
    for ref, data in files:
        ctype = ref.content_type.strip().split(";")[0].strip().lower()
        if not _MIME_TYPE.match(ctype):
            ctype = "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype,
                            filename=clean_filename(ref.filename))
    return mail


# -- the relayed mail as bytes, written directly where no file is attached ----------------------
# Building an ``EmailMessage`` tree and flattening it costs ≈ 0.8 ms a mail (the header
# registry parses every header it is given, and again when it folds them): most of delivery's
# CPU after DKIM. A mail without attachments is a fixed template — a few headers and one or two
# text parts — so it is written here directly, with the standard library's own encoders
# (``email.header`` for RFC 2047 words and folding, ``base64``), and parsed back by the same
# ``email`` package in the tests, which must read exactly what ``compose`` builds. Hand-written:
# no library writes MIME from a template; anything unusual takes ``compose``.

_CRLF = "\r\n"
#: Longest line a 7bit part may have (RFC 5322 §2.1.1: 998 characters before CRLF).
_MAX_LINE = 998


def _header(name: str, value: str) -> str:
    """``Name: value`` folded (and RFC 2047-encoded if not ASCII) as the email package would."""
    if value.isascii() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}{_CRLF}"
    charset = "us-ascii" if value.isascii() else "utf-8"
    folded = Header(value, charset, header_name=name).encode(linesep=_CRLF)
    return f"{name}: {folded}{_CRLF}"


def _address(name: str, address: str) -> str | None:
    """``name <address>``; a name that is not ASCII as ONE encoded word (RFC 2047): readers
    put a space between several encoded words of a display name (the email package itself
    does), which would change the name. None when that word would not fit a line."""
    if not name:
        return address
    if name.isascii():
        line = formataddr((name, address))
    else:
        word = "=?utf-8?b?" + base64.b64encode(name.encode("utf-8")).decode("ascii") + "?="
        line = f"{word} <{address}>"
    return line if len(line) < 900 else None


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _part(subtype: str, content: str, boundary: str = "") -> str:
    """One text part: 7bit when it is ASCII with short lines (and cannot be taken for the
    boundary), else base64 of its UTF-8 — what a mail client reads either way."""
    lines = _lines(content)
    if lines and lines[-1] == "":
        lines.pop()
    plain = (content.isascii() and all(len(line) <= _MAX_LINE for line in lines)
             and (not boundary or boundary not in content))
    if plain:
        return (f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
                f"Content-Transfer-Encoding: 7bit{_CRLF}{_CRLF}"
                + "".join(line + _CRLF for line in lines))
    canonical = _CRLF.join(lines) + _CRLF  # text in MIME has CRLF line ends (RFC 2046 §4.1.1)
    body = base64.encodebytes(canonical.encode("utf-8")).decode("ascii").replace("\n", _CRLF)
    return (f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
            f"Content-Transfer-Encoding: base64{_CRLF}{_CRLF}{body}")


def compose_bytes(
    pc: PolicyChecked, *, sender_name: str, domain: str, now: datetime,
    files: Sequence[tuple[AttachmentRef, bytes]] = (), links: Mapping[str, str] | None = None,
) -> bytes:
    """The relayed mail (:func:`compose`) as the bytes that go on the wire. A mail with files,
    or with an id that is not plain ASCII, is built by :func:`compose`; any other is written
    directly (same headers, same texts)."""
    ids = [pc.sender_alias, pc.recipient_alias, pc.message_id, pc.in_reply_to or "",
           pc.conversation_id, pc.order_id or "", domain]
    sender = _address(clean_header_text(sender_name), pc.sender_alias)
    if files or sender is None or not all(i.isascii() for i in ids):
        mail = compose(pc, sender_name=sender_name, domain=domain, now=now, files=files,
                       links=links)
        return mail.as_bytes(policy=SMTP)
    head = [
        f"From: {sender}{_CRLF}",
        _header("To", pc.recipient_alias),
        _header("Subject", clean_header_text(pc.subject) or "(no subject)"),
        _header("Date", format_datetime(now)),
        _header("Message-ID", email_message_id(pc.message_id, domain)),
    ]
    if pc.in_reply_to:
        parent = email_message_id(pc.in_reply_to, domain)
        head += [_header("In-Reply-To", parent), _header("References", parent)]
    head.append(_header("X-Bsm-Conversation", clean_header_text(pc.conversation_id)))
    if pc.order_id:
        head.append(_header("X-Bsm-Order", clean_header_text(pc.order_id)))
    head.append(f"MIME-Version: 1.0{_CRLF}")
    offered = {a: url for a, url in (links or {}).items() if a in LINK_LABELS["en"]}
    lang = link_language(pc.recipient_locale)
    text_footer = _footer_text(offered, lang) if offered else ""
    html_footer = _footer_html(offered, lang) if offered else ""
    if pc.text is not None and pc.html is not None:
        # Derived from the message id: the core stays free of random numbers, and the
        # boundary cannot occur in a base64 part ("_" is not in its alphabet); a 7bit part
        # that contains it is sent as base64 (``_part``).
        boundary = "=_bsm_" + hashlib.sha256(pc.message_id.encode()).hexdigest()[:32]
        body = (f"--{boundary}{_CRLF}" + _part("plain", pc.text + text_footer, boundary)
                + f"--{boundary}{_CRLF}" + _part("html", pc.html + html_footer, boundary)
                + f"--{boundary}--{_CRLF}")
        head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"{_CRLF}')
        return ("".join(head) + _CRLF + body).encode("ascii")
    if pc.text is not None:
        part = _part("plain", pc.text + text_footer)
    else:
        part = _part("html", (pc.html or "") + html_footer)
    return ("".join(head) + part).encode("ascii")


def delivered(pc: PolicyChecked, *, now: datetime, domain: str) -> Delivered:
    return Delivered(
        message_id=pc.message_id, conversation_id=pc.conversation_id,
        relationship_id=pc.relationship_id, sender_party_id=pc.sender_party_id,
        recipient_party_id=pc.recipient_party_id, sender_role=pc.sender_role,
        sender_alias=pc.sender_alias, recipient_alias=pc.recipient_alias, order_id=pc.order_id,
        in_reply_to=pc.in_reply_to, submitted_at=pc.submitted_at, delivered_at=now,
        channels=["mailbox", "email"], subject=pc.subject, text=pc.text, html=pc.html,
        attachments=list(pc.attachments),
        email_message_id=email_message_id(pc.message_id, domain),
    )


def next_attempt(now: datetime, attempts: int, first_retry_seconds: float) -> datetime:
    """Exponential backoff: first, 2×, 4×, … capped at one hour."""
    return now + timedelta(seconds=min(first_retry_seconds * 2 ** (attempts - 1), 3600.0))


def more_due(claimed: Sequence[int], batch_size: int) -> bool:
    """Whether the worker goes straight on to another round: only when a claim (jobs,
    notices) came back full, so that more may be due. Otherwise it waits for the next commit's
    wake-up (or the poll, for retries coming due): a second claim after each batch at a steady
    load finds nothing and costs a round trip per table."""
    return any(n >= batch_size for n in claimed)


def is_permanent(code: int | None) -> bool:
    """5xx SMTP replies are permanent; 4xx and connection errors are temporary."""
    return code is not None and 500 <= code < 600


@dataclass(frozen=True)
class Settlement:
    """What one delivery attempt's result means for its job: exactly one of delivered, a retry
    at ``retry_at``, or the ``bounce`` that ends it."""

    attempts: int
    delivered: Delivered | None = None
    retry_at: datetime | None = None
    bounce: Bounced | None = None


#: Errors that are the message's own: sending it again cannot help.
UNSENDABLE = "unsendable_mail"


def settle(
    pc: PolicyChecked, *, error: str | None, permanent: bool, attempts_before: int,
    max_attempts: int, first_retry_seconds: float, now: datetime, domain: str,
) -> Settlement:
    """Decide a job after one attempt: ``error`` None means the relay accepted the mail."""
    attempts = attempts_before + 1
    if error is None:
        return Settlement(attempts, delivered=delivered(pc, now=now, domain=domain))
    if not permanent and attempts < max_attempts:
        return Settlement(attempts, retry_at=next_attempt(now, attempts, first_retry_seconds))
    if error == "party_erased":
        bounce = failure(
            pc, code="party_erased", explanation="The recipient's account was closed and "
            "its personal data erased before the message reached them.",
            remedy="Nothing can reach this party any more; the conversation has ended.", now=now)
    elif error.startswith(UNSENDABLE):
        bounce = failure(
            pc, code=UNSENDABLE, explanation="The message could not be turned into an e-mail "
            f"({error.partition(':')[2] or 'unknown error'}).",
            remedy="Check the attachments' names and types, then send the message again "
            "(or without the attachment).", now=now)
    elif permanent:
        bounce = failure(
            pc, code="permanent_failure",
            explanation=f"The recipient's mail system refused the message ({error}).",
            remedy="Check the message in the message center; the recipient can still read it "
            "there once delivered, or write to them again later.", now=now)
    else:
        bounce = failure(
            pc, code="delivery_timeout",
            explanation=f"The message could not be delivered after {attempts} attempts "
            f"({error}).",
            remedy="Check the message in the message center; the recipient can still read it "
            "there once delivered, or write to them again later.", now=now)
    return Settlement(attempts, bounce=bounce)
