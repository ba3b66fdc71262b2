"""The door's sender authentication, its adapters offline: DKIM verified with dkimpy and SPF
with pyspf against a fixed zone (``bsm_alias.fixed_dns``), the same lookup for both."""

from __future__ import annotations

import asyncio

import pytest

from bsm_alias.door import dkim_checker, spf_checker
from bsm_alias.fixed_dns import ZoneLookup
from bsm_devstack.stack import LOCAL_DNS_ZONE
from tests.dkim_support import signed, zone_line
from tests.mail_support import simple_mail

LOCAL_ZONE = LOCAL_DNS_ZONE  # what the local stack's door answers from


def zone_with_key(domain: str) -> ZoneLookup:
    return ZoneLookup(LOCAL_ZONE + zone_line(domain) + "\n")


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


@pytest.mark.parametrize("ip, sender, expected", [
    ("127.0.0.1", "ana@gmail.example", "pass"),
    ("127.5.6.7", "ventas@sub.shop.example", "pass"),
    ("::1", "ana@gmail.example", "pass"),
    ("192.0.2.1", "ana@gmail.example", "fail"),
    ("127.0.0.1", "ana@gmail.com", "none"),  # a domain the zone does not hold publishes nothing
    ("127.0.0.1", "ana@example.org", "none"),
])
def test_the_local_zone_lets_loopback_send_for_example_domains_and_nothing_else(
    ip, sender, expected
):
    assert run(spf_checker(ZoneLookup(LOCAL_ZONE))(ip, sender, "client")) == expected


def test_a_wildcard_does_not_answer_for_a_name_the_zone_holds_with_other_records():
    zone = ZoneLookup(LOCAL_ZONE + 'mx.shop.example. IN A 127.0.0.1\n')
    assert zone("mx.shop.example", "TXT") == []
    assert zone("mx.shop.example", "A") == ["127.0.0.1"]
    assert zone("other.shop.example", "TXT") == [[b"v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"]]


def test_a_signature_of_the_from_domain_verifies_with_the_key_in_the_zone():
    raw = signed(simple_mail("ana@signed.test", "x@marketplace.example"), "signed.test")
    check = dkim_checker(zone_with_key("signed.test"))
    assert run(check(raw, "signed.test")) == ["signed.test"]
    assert run(check(raw, "mail.signed.test")) == ["signed.test"]  # relaxed alignment


@pytest.mark.parametrize("mutate", [
    lambda raw: raw.replace(b"Hola", b"Adios"),  # the body changed after signing
    lambda raw: raw.replace(b"Subject: Hola", b"Subject: Pague ya"),  # a signed header changed
])
def test_a_signature_over_altered_mail_does_not_count(mutate):
    raw = signed(simple_mail("ana@signed.test", "x@marketplace.example"), "signed.test")
    assert run(dkim_checker(zone_with_key("signed.test"))(mutate(raw), "signed.test")) == []


def test_a_signature_of_another_domain_or_without_a_published_key_does_not_count():
    raw = signed(simple_mail("ana@gmail.test", "x@marketplace.example"), "evil.test")
    assert run(dkim_checker(zone_with_key("evil.test"))(raw, "gmail.test")) == []
    unpublished = signed(simple_mail("ana@signed.test", "x@marketplace.example"), "signed.test")
    assert run(dkim_checker(ZoneLookup(LOCAL_ZONE))(unpublished, "signed.test")) == []


def test_a_signature_with_a_body_length_does_not_count():
    raw = signed(simple_mail("ana@signed.test", "x@marketplace.example"), "signed.test",
                 length=True)
    assert b" l=" in raw.split(b"\r\n\r\n")[0] or b";l=" in raw.split(b"\r\n\r\n")[0]
    assert run(dkim_checker(zone_with_key("signed.test"))(raw, "signed.test")) == []


@pytest.mark.parametrize("raw", [
    b"", b"not a mail", b"DKIM-Signature: v=1; a=rsa-sha256; d=signed.test\r\n\r\nbody",
    b"DKIM-Signature: garbage ===\r\nFrom: a@signed.test\r\n\r\nx",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=signed.test; s=bsm-test; h=from; bh=AA==; b=AA==\r\n"
    b"From: a@signed.test\r\n\r\nx",
])
def test_a_malformed_signature_is_no_signature_and_nothing_raises(raw):
    assert run(dkim_checker(zone_with_key("signed.test"))(raw, "signed.test")) == []
