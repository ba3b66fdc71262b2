"""VERP return paths (signed, expiring) and DKIM signatures of outgoing mail."""

import base64
import re
from datetime import UTC, datetime, timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

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


def _key() -> tuple[bytes, bytes]:
    """A fresh RSA-2048 key: (PEM, the DNS record's text)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return pem, f"v=DKIM1; k=rsa; p={public}".encode()


PEM, RECORD = _key()
T = int(NOW.timestamp())


def test_outgoing_mail_carries_a_dkim_signature_that_verifies_against_the_published_key():
    raw = (b"From: Muebles Sol <ssssssssssssssss@marketplace.example>\r\n"
           b"To: bbbbbbbbbbbbbbbb@marketplace.example\r\nSubject: Silla\r\n"
           b"Message-ID: <m1@marketplace.example>\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\n"
           b"\r\nSale ma\xc3\xb1ana.\r\n")
    signed = dkim_sign.sign(raw, domain=DOMAIN, selector="bsm1", private_key_pem=PEM,
                            timestamp=T)
    assert signed.startswith(b"DKIM-Signature:") and b"d=marketplace.example" in signed

    def dns(name, timeout=5):
        assert name == b"bsm1._domainkey.marketplace.example."
        return RECORD

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Sale", b"Vale"), dnsfunc=dns)


def _verifies(signed: bytes, record: bytes = RECORD) -> bool:
    return dkim.verify(signed, dnsfunc=lambda _name, timeout=5: record)


ODD_BODIES = [
    b"", b"\r\n", b"\r\n\r\n\r\n", b"hi", b"hi\r\n", b"hi  \r\n\r\n \r\n\t\r\n",
    b" lead\t\t and  inner \t spaces\t \r\nnext line \r\n", b"\tonly a tab\r\n",
    "Sale ma\u00f1ana \u2014 \U0001f600\r\n".encode(), b"a\r\n\r\nb\r\n\r\n", b"x" * 5000 + b"\r\n",
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_the_relaxed_body_is_dkimpys_relaxed_body(body):
    from dkim.canonicalization import Relaxed

    assert dkim_sign.relaxed_body(body) == Relaxed.canonicalize_body(body)


@pytest.mark.parametrize("name, value", [
    (b"Subject", b" Silla"), (b"SUBJECT ", b"\t  Silla   roja \t"),
    (b"To", b" a@x.example,\r\n\tb@x.example ,\r\n   c@x.example"),
    (b"Content-Type", b" text/plain;\r\n charset=\"utf-8\""), (b"X-Empty", b""),
])
def test_a_relaxed_header_is_dkimpys_relaxed_header(name, value):
    from dkim.canonicalization import Relaxed

    [(cname, cvalue)] = Relaxed.canonicalize_headers([(name, value + b"\r\n")])
    assert dkim_sign.relaxed_header(name, value) + b"\r\n" == cname + b":" + cvalue


HEAD = (b"From: Muebles Sol <ssssssssssssssss@marketplace.example>\r\n"
        b"To: bbbbbbbbbbbbbbbb@marketplace.example\r\nSubject:  Silla\t roja \r\n"
        b"Message-ID: <m1@marketplace.example>\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\n")


@pytest.mark.parametrize("raw", [
    HEAD + b"\r\n" + body for body in ODD_BODIES] + [
    HEAD,  # no body at all
    HEAD.replace(b"\r\n", b"\n") + b"\nLF line ends \n\n",
    HEAD + b"References: <a@x.example>\r\n <b@x.example>\r\n\r\nfolded\r\n",
    HEAD + b"Subject: a second subject, the one signed\r\n\r\nrepeated\r\n",
    HEAD + b"\r\nno CRLF after the last line  ",
])
def test_every_signature_verifies_with_dkimpy_whatever_the_mails_whitespace(raw):
    signed = dkim_sign.sign(raw, domain=DOMAIN, selector="bsm1", private_key_pem=PEM,
                            timestamp=T)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; ")
    assert f"t={T};".encode() in signed and b"d=marketplace.example;" in signed
    assert max(len(line) for line in signed.split(b"\r\n\r\n")[0].split(b"\r\n")) <= 998
    assert _verifies(signed)


def test_a_changed_signed_header_or_body_fails_and_an_unsigned_header_does_not():
    signed = dkim_sign.sign(HEAD + b"X-Mailer: bsm\r\n\r\nSale hoy.\r\n", domain=DOMAIN,
                            selector="bsm1", private_key_pem=PEM, timestamp=T)
    assert _verifies(signed)
    assert _verifies(signed.replace(b"X-Mailer: bsm", b"X-Mailer: other"))
    assert _verifies(signed.replace(b"Sale hoy.\r\n", b"Sale  hoy. \r\n\r\n")), "relaxed"
    for changed in (signed.replace(b"Silla", b"Mesa"), signed.replace(b"hoy", "mañana".encode()),
                    signed.replace(b"To: bbbb", b"To: cccc")):
        assert not _verifies(changed)
    assert not _verifies(signed, _key()[1]), "another key's record"


def test_a_signature_is_the_same_bytes_for_the_same_mail_and_moment():
    mail = HEAD + b"\r\nhi\r\n"
    one, two = (dkim_sign.sign(mail, domain=DOMAIN, selector="bsm1", private_key_pem=PEM,
                               timestamp=T) for _ in range(2))
    assert one == two
    assert one != dkim_sign.sign(mail, domain=DOMAIN, selector="bsm1", private_key_pem=PEM,
                                 timestamp=T + 1)


def test_a_mail_without_from_is_refused_not_signed():
    with pytest.raises(ValueError, match="From"):
        dkim_sign.sign(b"To: b@x.example\r\n\r\nhi\r\n", domain=DOMAIN, selector="bsm1",
                       private_key_pem=PEM, timestamp=T)


def test_a_dkim_key_that_cannot_sign_is_refused_when_the_settings_load():
    from pydantic import ValidationError

    from bsm_delivery.settings import DeliverySettings

    ed = base64.b64encode(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())).decode()
    common = {"pii_key": base64.b64encode(b"p" * 32).decode(), "signing_key": "unused",
              "BSM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    for bad in (ed, base64.b64encode(b"not a key").decode(), "%%%"):
        with pytest.raises(ValidationError, match="not the base64 of a PEM RSA private key"):
            DeliverySettings(**common, dkim_key=bad)
    good = DeliverySettings(**common, dkim_key=base64.b64encode(PEM).decode())
    assert good.dkim_key_pem() == PEM
