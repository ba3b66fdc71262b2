"""DKIM for tests: a key pair, its DNS record, and mail signed with it (dkimpy), so the mail
door's DKIM check runs offline against a DNS lookup the test injects."""

from __future__ import annotations

import base64
from functools import lru_cache

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SELECTOR = "bsm-test"


@lru_cache(maxsize=1)
def key_pair() -> tuple[bytes, bytes]:
    """(private key PEM, the ``v=DKIM1`` TXT record publishing its public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def record_name(domain: str, selector: str = SELECTOR) -> str:
    return f"{selector}._domainkey.{domain}"


def zone_line(domain: str, selector: str = SELECTOR) -> str:
    """The zone-file line publishing the test key for ``domain`` (character strings of at most
    255 octets each, as DNS requires)."""
    _, record = key_pair()
    strings = " ".join(f'"{record[i:i + 200].decode()}"' for i in range(0, len(record), 200))
    return f"{record_name(domain, selector)}. 300 IN TXT {strings}"


def signed(raw: bytes, domain: str, *, selector: str = SELECTOR, length: bool = False) -> bytes:
    """``raw`` with a DKIM-Signature of ``domain`` in front (``length``: with an ``l=`` tag)."""
    private, _ = key_pair()
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signature = dkim.sign(raw, selector.encode(), domain.encode(), private,
                          include_headers=[b"From", b"To", b"Subject", b"Message-ID"],
                          length=length)
    return signature + raw
