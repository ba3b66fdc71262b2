"""Bounce reports, pure: what a delivery status notification at a VERP return path says.

The mail door hands the raw report here after RCPT established that it came to a genuine,
unexpired return path (:mod:`bsm_shared.runtime.verp`), so the message it is about is known;
what is read from the report is only *what happened*:

* RFC 3464 reports (``multipart/report; report-type=delivery-status``, and the RFC 6533
  ``message/global-delivery-status`` variant) are read with the standard library's ``email``
  package: the per-message ``Reporting-MTA`` and each recipient's ``Action``, ``Status``,
  ``Diagnostic-Code`` and ``Remote-MTA``. A return path belongs to one mail with one envelope
  recipient, so of several recipient blocks the most consequential one is taken.
* A provider's own bounce text with no delivery-status part is read by ``flufl.bounce``
  (GNU Mailman's bounce detectors: Postfix, qmail, Exim, Exchange, Yahoo, … texts): permanent
  failures → ``failed`` with status ``5.0.0``, only temporary ones → ``delayed`` ``4.0.0``,
  and ``standard=False`` says the report was read heuristically. A mail that neither has a
  delivery-status part nor looks like a bounce (an out-of-office reply sent to the return
  path) is no report: :func:`read_report` returns ``None``.

Personal data never leaves this module: every address in the remote server's text is replaced
by ``[address]``, and the reporting server is reduced to a host name.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

from flufl.bounce import all_failures

from bsm_shared.contract.limits import clean_header_text

from .mail import Refusal, decode_text, message_ids, read_mime, storable

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
#: Which recipient block of a report counts when there are several (most consequential first).
_SEVERITY = {action: rank for rank, action in enumerate(ACTIONS)}

_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# An address in free text: an RFC 5321 mailbox is `local@domain`, with the local part possibly
# quoted; the servers' texts write them bare, in <>, or after `rfc822;`. Hand-written because
# no library scrubs addresses out of prose; deliberately greedy (anything around an `@` that is
# not a separator), since a false positive costs a word of diagnostic, a miss leaks an address.
_ADDRESS = re.compile(r'"[^"\r\n]*"@[^\s<>()\[\],;:"]+|[^\s<>()\[\],;:"\'`]+@[^\s<>()\[\],;:"]+')
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$")
_SUBJECT_HINT = re.compile(
    r"undeliver|delivery status notification|delivery (?:has )?failed|mail delivery failed|"
    r"returned mail|failure notice|delivery failure|non.?delivery|could not be delivered",
    re.I,
)
_SMTP_REPLY = re.compile(r"\b[45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b[^\r\n]*(?:\r?\n[ \t]+[^\r\n]+)*")

MAX_DIAGNOSTIC = 1000
_REDACT_READS = 4 * MAX_DIAGNOSTIC


@dataclass(frozen=True)
class Report:
    """What one bounce report says (no personal data)."""

    action: str
    status: str
    diagnostic: str
    reporting_mta: str
    standard: bool
    report_id: str  # the report's own Message-ID, else a hash of its bytes: the same report
    #                 retried by the provider is recognised as the same


def redact(text: str) -> str:
    """``text`` on one storable line (no control characters, no U+0000, no lone surrogate),
    every email address in it replaced by ``[address]``, at most :data:`MAX_DIAGNOSTIC`
    characters.

    Only the start of a long ``text`` is read, up to a whitespace so that no address is cut in
    two (the address pattern backtracks quadratically over a long run without ``@``, and a
    remote server's text can be as long as the report)."""
    head = text[:_REDACT_READS]
    if len(text) > _REDACT_READS:
        head = head.rsplit(None, 1)[0]
    one_line = clean_header_text(storable(head), limit=_REDACT_READS)
    return _ADDRESS.sub("[address]", one_line)[:MAX_DIAGNOSTIC]


def _typed_value(value: str | None) -> str:
    """The value of an RFC 3464 typed field (``dns; mx.example`` → ``mx.example``)."""
    if not value:
        return ""
    _, sep, rest = str(value).partition(";")
    return (rest if sep else str(value)).strip()


def host_name(value: str | None) -> str:
    """The host name of a ``Reporting-MTA`` / ``Remote-MTA`` field, or ``""`` if it is none
    (an address literal, a comment, or anything else that is not a DNS name)."""
    first = _typed_value(value).split()[0] if _typed_value(value) else ""
    first = first.rstrip(".").lower()
    return first if _HOST.match(first) and "." in first else ""


def _fields_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part: per-message first, then per-recipient."""
    if part.is_multipart():  # message/delivery-status: the email package parsed it
        return [b for b in part.get_payload() if isinstance(b, Message)]
    # message/global-delivery-status (RFC 6533) arrives as text: the same blocks, in UTF-8.
    raw = part.get_payload(decode=True)
    data = raw if isinstance(raw, bytes) else b""
    blocks = re.split(rb"\r?\n[ \t]*\r?\n", data.strip())
    read = [read_mime(b + b"\n") for b in blocks if b.strip()]
    return [r for r in read if not isinstance(r, Refusal)]


def _delivery_status_part(mail: Message) -> Message | None:
    for part in mail.walk():
        if part.get_content_type() in ("message/delivery-status",
                                       "message/global-delivery-status"):
            return part
    return None


def _report_id(mail: Message, raw: bytes) -> str:
    found = message_ids(mail.get("Message-ID", ""))
    return found[0] if found else "sha256:" + hashlib.sha256(raw).hexdigest()


def _standard(mail: Message, part: Message, report_id: str) -> Report | None:
    blocks = _fields_blocks(part)
    if not blocks:
        return None
    per_message, recipients = blocks[0], blocks[1:]
    # A block with an Action is a recipient block even if the per-message block was omitted.
    if per_message.get("Action") is not None:
        per_message, recipients = Message(), blocks
    chosen: Message | None = None
    for block in recipients:
        action = str(block.get("Action", "")).strip().lower().split(" ")[0]
        if action not in _SEVERITY:
            continue
        if chosen is None or _SEVERITY[action] < _SEVERITY[
            str(chosen.get("Action")).strip().lower().split(" ")[0]
        ]:
            chosen = block
    if chosen is None:
        return None
    action = str(chosen.get("Action")).strip().lower().split(" ")[0]
    diagnostic_code = _typed_value(chosen.get("Diagnostic-Code"))
    found = _STATUS.search(str(chosen.get("Status", ""))) or _STATUS.search(diagnostic_code)
    status = found.group(1) if found else _default_status(action)
    reporting = host_name(per_message.get("Reporting-MTA")) or host_name(chosen.get("Remote-MTA"))
    return Report(action=action, status=status, diagnostic=redact(diagnostic_code),
                  reporting_mta=reporting, standard=True, report_id=report_id)


def _default_status(action: str) -> str:
    return {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "2.0.0")


def _body_text(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain", "html"))
    return decode_text(body) if body is not None else ""


def _non_standard(raw: bytes, mail: EmailMessage, report_id: str) -> Report | None:
    # flufl.bounce's detectors want the compat32 Message API (get_payload on the old model).
    # (``raw`` is within the door's MIME bounds: ``read_report`` read it first.)
    try:
        temporary, permanent = all_failures(email.message_from_bytes(raw))
    except Exception:  # noqa: BLE001 - a detector crashes on some mail (Yale's, on no From)
        temporary, permanent = frozenset(), frozenset()  # then only the subject can tell
    if not permanent and not temporary and not _SUBJECT_HINT.search(str(mail.get("Subject", ""))):
        return None  # an auto-reply or stray mail at the return path: not a bounce report
    delayed = bool(temporary) and not permanent
    reply = _SMTP_REPLY.search(_body_text(mail))
    what = "temporary failure" if delayed else "failed"
    diagnostic = (f"Non-standard bounce (no delivery-status part), read as {what}"
                  + (f": {reply.group(0)}" if reply else "."))
    sender_host = str(mail.get("From", "")).rpartition("@")[2].split(">")[0].split()
    return Report(
        action="delayed" if delayed else "failed", status="4.0.0" if delayed else "5.0.0",
        diagnostic=redact(diagnostic),
        reporting_mta=host_name("dns; " + sender_host[0]) if sender_host else "",
        standard=False, report_id=report_id,
    )


def read_report(raw: bytes) -> Report | Refusal | None:
    """What the bounce report ``raw`` says, ``None`` if it is no bounce report, or the refusal
    if it exceeds the door's MIME bounds (:func:`bsm_alias.mail.read_mime`)."""
    mail = read_mime(raw)
    if isinstance(mail, Refusal):
        return mail
    report_id = _report_id(mail, raw)
    part = _delivery_status_part(mail)
    if part is not None:
        found = _standard(mail, part, report_id)
        if found is not None:
            return found
    return _non_standard(raw, mail, report_id)
