"""VERP return paths (signed, expiring) and DKIM signatures of outgoing mail."""

import base64
import re
from datetime import UTC, datetime, timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bsm_delivery import dkim_sign
from bsm_shared.runtime import verp

KEY, DOMAIN = b"k" * 32, "marketplace.example"
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
MID = "0193a5c2-7d1e-7b2a-9c3d-1e2f3a4b5c6d"


def test_a_return_path_names_its_message_and_reads_back_until_it_expires():
    path = verp.return_path(KEY, MID, NOW + timedelta(days=14), DOMAIN)
    assert re.fullmatch(r"bounces\+[0-9a-f-]+\.[0-9a-z]+\.[a-z2-7]{12}@marketplace\.example", path)
    assert len(path.partition("@")[0]) <= 64, "a local part fits RFC 5321's 64 octets"
    assert verp.read_return_path(KEY, path, domain=DOMAIN, now=NOW) == MID
    assert verp.read_return_path(KEY, path.replace(DOMAIN, DOMAIN.upper()), domain=DOMAIN,
                                 now=NOW) == MID


def test_an_expired_return_path_is_refused_as_expired_not_as_forged():
    path = verp.return_path(KEY, MID, NOW + timedelta(days=14), DOMAIN)
    with pytest.raises(verp.VerpExpired, match="expired"):
        verp.read_return_path(KEY, path, domain=DOMAIN, now=NOW + timedelta(days=14, seconds=1))


def test_a_return_path_for_another_message_or_a_later_expiry_is_refused_as_forged():
    path = verp.return_path(KEY, MID, NOW + timedelta(days=1), DOMAIN)
    local, _, _ = path.partition("@")
    _, expires, mac = local.rsplit(".", 2)
    other_message = f"bounces+{MID[:-1]}e.{expires}.{mac}@{DOMAIN}"
    later = f"bounces+{MID}.{expires}z.{mac}@{DOMAIN}"
    for forged in (other_message, later):
        with pytest.raises(verp.VerpError, match="not issued") as raised:
            verp.read_return_path(KEY, forged, domain=DOMAIN, now=NOW)
        assert not isinstance(raised.value, verp.VerpExpired)
    with pytest.raises(verp.VerpError, match="not issued"):
        verp.read_return_path(b"x" * 32, path, domain=DOMAIN, now=NOW)


def test_a_return_path_with_an_absurd_expiry_is_refused_as_malformed_not_a_crash():
    for expiry in ("zzzzzzzzzzzz", "zzzzzzzzzzzzzzzzzzzzzzzz"):
        with pytest.raises(verp.VerpError, match="malformed"):
            verp.read_return_path(KEY, f"bounces+abc.{expiry}.aaaa@{DOMAIN}", domain=DOMAIN,
                                  now=NOW)


def test_a_return_path_whose_case_an_mta_folded_still_names_its_message():
    mid = "0b6f3d52-3c1e-4d8a-9a0e-5d7a1c2e9f41"
    path = verp.return_path(KEY, mid, NOW + timedelta(days=1), DOMAIN)
    local, _, domain = path.rpartition("@")
    assert verp.read_return_path(KEY, f"{local.upper()}@{domain}", domain=DOMAIN, now=NOW) == mid


def test_an_address_that_is_not_a_return_path_is_refused():
    for address in ("bounces@marketplace.example", f"bounces+{MID}.x.y@other.example", "a@b"):
        with pytest.raises(verp.VerpError):
            verp.read_return_path(KEY, address, domain=DOMAIN, now=NOW)


def test_outgoing_mail_carries_a_dkim_signature_that_verifies_against_the_published_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    raw = (b"From: Muebles Sol <ssssssssssssssss@marketplace.example>\r\n"
           b"To: bbbbbbbbbbbbbbbb@marketplace.example\r\nSubject: Silla\r\n"
           b"Message-ID: <m1@marketplace.example>\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\n"
           b"\r\nSale ma\xc3\xb1ana.\r\n")
    signed = dkim_sign.sign(raw, domain=DOMAIN, selector="bsm1", private_key_pem=pem)
    assert signed.startswith(b"DKIM-Signature:") and b"d=marketplace.example" in signed

    def dns(name, timeout=5):
        assert name == b"bsm1._domainkey.marketplace.example."
        return f"v=DKIM1; k=rsa; p={public}".encode()

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Sale", b"Vale"), dnsfunc=dns)


def test_dkim_signatures_through_openssl_are_the_same_bytes_as_dkimpys_own():
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

    from bsm_delivery import dkim_sign

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    parsed = parse_pem_private_key(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    for data in (b"", b"DKIM-Signature: v=1; a=rsa-sha256; ...", "Sale mañana".encode()):
        digest = hashlib.sha256(data)
        assert dkim_sign._openssl_rsa_sign(digest.copy(), parsed) == RSASSA_PKCS1_v1_5_sign(
            digest.copy(), parsed)


def test_with_the_key_parsed_once_each_key_still_signs_its_own_mails():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bsm_delivery import dkim_sign

    dkim_sign.use_openssl_rsa()
    mail = b"From: a@marketplace.example\r\nTo: b@marketplace.example\r\nSubject: x\r\n\r\nhi\r\n"
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
    pems = [k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) for k in keys]
    for _ in range(2):  # the second round reads the cached parses
        for key, pem in zip(keys, pems, strict=True):
            public = base64.b64encode(key.public_key().public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
            signed = dkim_sign.sign(mail, domain="marketplace.example", selector="bsm1",
                                    private_key_pem=pem)
            assert dkim.verify(signed, dnsfunc=lambda _n, timeout=5, p=public:
                               f"v=DKIM1; k=rsa; p={p}".encode())
