"""DKIM signatures for the marketplace domain (dkimpy), over the headers of the allow-list."""

from __future__ import annotations

import dkim

#: Signed headers: the ones compose writes that a recipient's client shows or threads by.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"in-reply-to",
                  b"references", b"mime-version", b"content-type")


def sign(raw: bytes, *, domain: str, selector: str, private_key_pem: bytes) -> bytes:
    """``raw`` with a ``DKIM-Signature`` header prepended (relaxed/relaxed, rsa-sha256)."""
    present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\n\n", 1)[0]
               .replace(b"\r\n", b"\n").split(b"\n") if b":" in line and not line[:1].isspace()}
    header = dkim.sign(
        raw, selector.encode(), domain.encode(), private_key_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h for h in SIGNED_HEADERS if h in present],
    )
    return header + raw
