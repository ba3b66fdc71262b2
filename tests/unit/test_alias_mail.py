"""The mail door's pure decisions: who may send, which From stands, MIME → message, scrubbing."""

import pytest

from bsm_alias import mail
from bsm_alias.core import Relationship
from tests.mail_support import CLIENTS, corpus_mail

REL = Relationship("rel-1", "buyer-1", "seller-1", "b" * 16, "s" * 16)
DOMAIN = "marketplace.example"
SELLER_REAL, SELLER_ALIAS = "juan.perez@sol-muebles.example", "s" * 16 + "@" + DOMAIN
BUYER_REAL, BUYER_ALIAS = "ana.garcia@gmail.example", "b" * 16 + "@" + DOMAIN
VALUES = {"from": SELLER_REAL, "from_name": "Juan Perez", "to": BUYER_ALIAS, "to_name": "Ana",
          "subject": "Silla", "in_reply_to": f"0193abc@{DOMAIN}"}


def facts(**kw):
    return mail.SenderFacts(**{k: frozenset(v) for k, v in kw.items()})


def test_the_seller_writing_to_the_buyers_alias_from_the_registered_address_is_accepted():
    assert mail.authorize_sender(REL, "buyer-1", facts(registered_party_ids={"seller-1"})) == "seller-1"


def test_an_authorized_sender_address_is_accepted_as_the_seller():
    assert mail.authorize_sender(REL, "buyer-1", facts(authorized_for={"seller-1"})) == "seller-1"


def test_a_blocked_address_is_refused_even_if_it_is_the_registered_one():
    decided = mail.authorize_sender(
        REL, "buyer-1", facts(registered_party_ids={"seller-1"}, blocked_for={"seller-1"}))
    assert decided == mail.BLOCKED_SENDER and decided.reply().startswith("550 5.7.1")


def test_an_unknown_sender_is_refused_with_550_5_7_1_naming_rule_a4():
    decided = mail.authorize_sender(REL, "buyer-1", facts())
    assert decided == mail.UNKNOWN_SENDER and "(A4)" in decided.text


def test_a_registered_party_of_another_relationship_cannot_use_this_alias():
    decided = mail.authorize_sender(REL, "buyer-1", facts(registered_party_ids={"seller-2"}))
    assert decided == mail.NOT_IN_RELATIONSHIP


def test_a_buyer_address_authorized_by_some_seller_does_not_make_it_the_buyer():
    # authorized lists only ever speak for sellers
    assert mail.authorize_sender(REL, "seller-1", facts(authorized_for={"buyer-1"})) \
        == mail.NOT_IN_RELATIONSHIP


def test_the_alias_owner_writing_to_their_own_alias_is_not_accepted():
    assert mail.authorize_sender(REL, "seller-1", facts(registered_party_ids={"seller-1"})) \
        == mail.NOT_IN_RELATIONSHIP


UNAUTHENTICATED = "sender_unauthenticated"


@pytest.mark.parametrize("header_from, spf, dkim, expected", [
    # SPF pass for the envelope sender: the domain vouches (a colleague's From at it too).
    ("a@shop.example", "pass", [], None),
    ("A@Shop.Example", "pass", [], None),
    ("b@shop.example", "pass", [], None),
    # A DKIM signature aligned with the From domain (relaxed: same organizational domain).
    ("a@shop.example", "none", ["shop.example"], None),
    ("a@shop.example", "softfail", ["mail.shop.example"], None),
    ("a@shop.example", "fail", ["shop.example"], None),  # DMARC: aligned DKIM passes anyway
    ("b@shop.example", "neutral", ["SHOP.example"], None),
    # Neither: the claimed address proves nothing.
    ("a@shop.example", "none", [], UNAUTHENTICATED),
    ("a@shop.example", "neutral", [], UNAUTHENTICATED),
    ("a@shop.example", "softfail", [], UNAUTHENTICATED),
    ("a@shop.example", "permerror", [], UNAUTHENTICATED),
    ("a@shop.example", "none", ["evil.example"], UNAUTHENTICATED),  # signed, by someone else
    ("a@shop.example", "none", ["example"], UNAUTHENTICATED),  # a public suffix aligns nothing
    ("a@shop.example", "none", ["shop.example.evil.example"], UNAUTHENTICATED),
    ("a@shop.example", "fail", [], "spf_fail"),
    ("a@shop.example", "temperror", [], "dns_temporary"),
    # The From header itself.
    ("b@other.example", "pass", ["other.example"], "header_from_mismatch"),
    (None, "pass", [], "header_from_missing"),
])
def test_a_sender_stands_only_when_spf_passes_or_dkim_aligned_with_from_verifies(
    header_from, spf, dkim, expected
):
    refusal = mail.authenticate_sender("a@shop.example", header_from, spf, dkim)
    assert (refusal.reason_code if refusal else None) == expected


def test_an_unauthenticated_sender_is_told_why_and_what_to_do_in_5_7_26():
    refusal = mail.authenticate_sender("ana@gmail.example", "ana@gmail.example", "none", [])
    assert (refusal.code, refusal.status) == (550, "5.7.26")
    assert "gmail.example" in refusal.text and "SPF" in refusal.text and "DKIM" in refusal.text
    assert "message center" in refusal.text and "(A4)" in refusal.text
    assert "\r" not in refusal.reply() and "\n" not in refusal.reply()


@pytest.mark.parametrize("domain, organizational", [
    ("shop.example", "shop.example"), ("mail.shop.example", "shop.example"),
    ("a.b.shop.example", "shop.example"), ("bbc.co.uk", "bbc.co.uk"),
    ("news.bbc.co.uk", "bbc.co.uk"), ("co.uk", "co.uk"), ("example", "example"),
])
def test_the_organizational_domain_follows_the_public_suffix_list(domain, organizational):
    assert mail.organizational_domain(domain) == organizational


@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_shape_parses_into_a_body_and_the_reply_target(client):
    parsed = mail.parse(corpus_mail(client, **VALUES))
    assert parsed.text
    assert parsed.subject.lower() == "re: silla"
    assert mail.reply_target(parsed, DOMAIN) == "0193abc"
    assert parsed.header_from == [("Juan Perez", SELLER_REAL)]


def test_quoted_printable_latin1_and_windows_1252_bodies_decode_to_text():
    assert "mañana por mensajería" in mail.parse(corpus_mail("outlook_reply", **VALUES)).text
    assert "Délai : 48 h." in mail.parse(corpus_mail("thunderbird_latin1", **VALUES)).text


def test_an_inline_image_is_an_attachment_judged_png_by_its_bytes():
    [image] = mail.parse(corpus_mail("gmail_with_inline_image", **VALUES)).attachments
    assert (image.filename, image.content_type, image.inline) == ("embalaje.png", "image/png", True)
    assert image.content.startswith(b"\x89PNG")


def test_an_attachment_type_comes_from_its_content_not_its_name_or_declared_type():
    [pdf] = mail.parse(corpus_mail("apple_mail_with_pdf", **VALUES)).attachments
    assert pdf.filename == "factura.txt" and pdf.content_type == "application/pdf"


def test_reply_target_ignores_foreign_message_ids_and_falls_back_to_references():
    raw = (b"From: a@x.example\r\nTo: y@z\r\nSubject: s\r\n"
           b"In-Reply-To: <CAfoo@mail.gmail.com>\r\n"
           b"References: <first@" + DOMAIN.encode() + b"> <second@" + DOMAIN.encode()
           + b"> <CAfoo@mail.gmail.com>\r\n\r\nbody\r\n")
    assert mail.reply_target(mail.parse(raw), DOMAIN) == "second"


def test_scrub_replaces_addresses_in_every_quoting_style_and_the_name_beside_them():
    text = (f'From: "Juan Perez" <{SELLER_REAL}>\nDe: Juan Perez [mailto:{SELLER_REAL.upper()}]\n'
            f'<a href="mailto:{SELLER_REAL}">Juan Perez &lt;{SELLER_REAL}&gt;</a>\n'
            f"--\nJuan Perez\n{SELLER_REAL}\nWrite to {BUYER_REAL} too")
    out = mail.scrub(text, {SELLER_REAL: SELLER_ALIAS, BUYER_REAL: BUYER_ALIAS},
                     {"Juan Perez": "Muebles Sol"})
    assert SELLER_REAL not in out.lower() and BUYER_REAL not in out.lower()
    assert "Juan Perez" not in out
    assert f"From: Muebles Sol <{SELLER_ALIAS}>" in out
    assert f"Write to {BUYER_ALIAS} too" in out


def test_scrub_leaves_a_name_that_does_not_stand_beside_an_address():
    out = mail.scrub("Juan Perez will call", {SELLER_REAL: SELLER_ALIAS}, {"Juan Perez": "X"})
    assert out == "Juan Perez will call"


def test_a_clients_html_document_is_reduced_to_its_body_without_head_or_meta():
    html = mail.parse(corpus_mail("outlook_reply", **VALUES)).html
    assert html.startswith("<div") and "<meta" not in html and "<html" not in html.lower()
    assert mail.body_fragment("<p>only a fragment</p>") == "<p>only a fragment</p>"
    assert mail.body_fragment("<html><head><style>p{}</style></head>x</html>") == "x"
