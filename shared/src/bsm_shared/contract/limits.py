"""What one message and one event may hold: the limits every door and every stage share.

One source for each limit, so the doors (HTTP, SMTP, the input topics) refuse what a later stage
could not carry, with the limit named, instead of a stage failing on it later:

* An event is one Kafka record. The broker's ``message.max.bytes`` (1,048,588 by default) and
  the producer's ``max_request_size`` (1,048,576) bound it; :data:`MAX_EVENT_BYTES` leaves room
  for the record's own overhead. A stage checks the size of every event it writes before it
  records it (:func:`check_event_size`), so an event that cannot travel is never put in an
  outbox.
* A message's body travels in the events of its path (``MessageSubmitted`` → ``MessageAddressed``
  → ``PolicyChecked`` → ``Delivered``), once per event. Text and HTML together are limited to
  :data:`MAX_BODY_BYTES` as they are spelled in an event (:func:`body_bytes`: UTF-8, JSON
  escapes included), far below the event limit, so the fields each stage adds always fit.
  Sanitising HTML can make it longer (``<`` in text becomes ``&lt;``): policy refuses a message
  whose sanitised body passes :data:`MAX_SANITIZED_BODY_BYTES` (``message_too_large``).
* Attachments never travel in events: they are stored by content hash (B4: 10 MB per message),
  and events carry the reference.
* PostgreSQL ``text`` and ``jsonb`` cannot hold U+0000, and UTF-8 cannot encode a lone
  surrogate (which JSON's ``\\ud800`` escapes can produce). No string of an event may hold
  either (:func:`unstorable`): the contract refuses such an event, the HTTP doors answer 422 and
  the mail door removes U+0000 from decoded text (a mail client never shows it) — see
  ``README.md`` ("Limits at every door").
* Header values (subject, file names) are single lines: CR, LF and other control characters
  are replaced where they enter (:func:`clean_header_text`, :func:`clean_filename`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: Largest event a stage writes (bytes of the signed JSON). Kafka's defaults are 1 MiB.
MAX_EVENT_BYTES = 1_000_000

#: Text and HTML of one message together, in UTF-8 bytes (every door, and the contract).
MAX_BODY_BYTES = 200_000

#: The body after policy sanitised its HTML (which may escape characters into entities).
MAX_SANITIZED_BODY_BYTES = 2 * MAX_BODY_BYTES

#: An id (message, order, party) from outside: what our tables and mail headers carry.
MAX_ID_CHARS = 128

#: A subject is one header line (RFC 5322 §2.1.1: at most 998 characters).
MAX_SUBJECT_CHARS = 998

#: Attachments of one message together (B4: the official help page's figure).
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

#: How many attachments one message may reference.
MAX_ATTACHMENTS = 20

#: A file name as shown in a mail header or a download (characters).
MAX_FILENAME_CHARS = 255

#: The largest mail the mail door accepts in the SMTP dialogue (``SIZE``): attachments are
#: base64 in mail (4/3 of their size) and mails carry headers and alternatives, so a mail of up
#: to this size may still hold a message within the limits above; the door then judges the
#: parts and refuses, with the limit named, what exceeds them.
MAX_MAIL_BYTES = 25 * 1024 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored or encoded (``U+0000`` or ``a lone surrogate``), or None."""
    if "\x00" in value:
        return f"U+0000 (NUL) at character {value.index(chr(0))}"
    if not value.isascii():
        # Strict UTF-8 refuses exactly the surrogate code points, at the first one; in C, so
        # ≈ 15× faster than a regular expression over the text (every event is checked twice).
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"a lone surrogate (U+{ord(value[exc.start]):04X}) at character "
                    f"{exc.start}")
    return None


def find_unstorable(obj: Any, path: str = "") -> tuple[str, str] | None:
    """The first string (key or value) in a decoded JSON object that cannot be stored:
    ``(path, reason)``, or None. Paths read like ``data.attachments.0.filename``."""
    found = _find(obj)
    if found is None:
        return None
    parts, reason = found
    return ".".join([path, *parts] if path else parts) or "(root)", reason


def _find(obj: Any) -> tuple[list[str], str] | None:
    """The first unstorable string under ``obj``: its path (built only for what is found, on
    the way back up) and why."""
    if isinstance(obj, str):
        reason = unstorable(obj)
        return ([], reason) if reason is not None else None
    items = (obj.items() if isinstance(obj, dict)
             else enumerate(obj) if isinstance(obj, list) else ())
    for k, v in items:
        key = str(k)
        reason = unstorable(key) if isinstance(obj, dict) else None
        found = ([], reason) if reason is not None else _find(v)
        if found is not None:
            found[0].insert(0, key)
            return found
    return None


def body_bytes(text: str | None, html: str | None) -> int:
    """The size a message's body counts against :data:`MAX_BODY_BYTES`: the bytes its text and
    HTML take inside an event — UTF-8, as JSON spells them (a control character takes six), so a
    body within the limit fits in every event of its path, whatever it holds."""
    return sum(len(json.dumps(part, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2
               for part in (text, html) if part)


def clean_header_text(value: str, *, limit: int = MAX_SUBJECT_CHARS) -> str:
    """One header line: control characters (CR, LF, NUL, tabs…) become spaces, runs of
    spaces collapse, the ends are trimmed, and the result is cut to ``limit`` characters."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def clean_filename(name: str | None, *, fallback: str = "attachment") -> str:
    """A file name safe in a mail header, a ``Content-Disposition`` and a download: NFC, no
    control characters (CR/LF included), no path (``/``, ``\\``), no leading dots, at most
    :data:`MAX_FILENAME_CHARS` characters keeping the extension; ``fallback`` if nothing is
    left."""
    if not name:
        return fallback
    value = unicodedata.normalize("NFC", name)
    value = _SURROGATE.sub("", value)
    value = value.replace("\\", "/").rsplit("/", 1)[-1]
    value = " ".join(_CONTROL.sub(" ", value).split()).lstrip(".").strip()
    if not value:
        return fallback
    if len(value) > MAX_FILENAME_CHARS:
        stem, dot, ext = value.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            value = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            value = value[:MAX_FILENAME_CHARS]
    return value


class EventTooLarge(ValueError):
    """An event is larger than a Kafka record may be: a permanent error, never retried."""

    def __init__(self, event_type: str, size: int) -> None:
        super().__init__(
            f"{event_type} would be {size} bytes; an event may be at most {MAX_EVENT_BYTES}"
        )
        self.event_type = event_type
        self.size = size


def check_event_size(event_type: str, payload: bytes) -> bytes:
    """``payload`` if it fits in one Kafka record, else :class:`EventTooLarge`."""
    if len(payload) > MAX_EVENT_BYTES:
        raise EventTooLarge(event_type, len(payload))
    return payload
