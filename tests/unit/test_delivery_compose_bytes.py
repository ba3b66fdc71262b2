"""The relayed mail written directly (issue 14, mail leg): for every message without files,
``compose_bytes`` must read, through the standard ``email`` parser, exactly as what ``compose``
builds — the same headers, the same texts, the same links — whatever the names, subjects and
bodies hold (non-ASCII, long lines, CR/LF, the boundary itself)."""

from __future__ import annotations

import email
import email.policy

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from bsm_delivery import core, dkim_sign
from bsm_shared.contract.limits import clean_header_text
from tests.factories import T0, policy_checked

DOMAIN = "marketplace.example"
LINKS = {"report": "https://gw.example/v1/links/abc.def",
         "no-response-needed": "https://gw.example/v1/links/ghi.jkl"}
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
           "X-Bsm-Conversation", "X-Bsm-Order", "MIME-Version")

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


def read(raw: bytes) -> dict:
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    out = {h: str(mail[h]) if mail[h] is not None else None for h in HEADERS}
    out["type"] = mail.get_content_type()
    for kind in ("plain", "html"):
        part = mail.get_body((kind,))
        out[kind] = (None if part is None else
                     part.get_content().replace("\r\n", "\n").rstrip("\n"))
    assert not mail.defects, mail.defects
    return out


def both(pc, name: str, links=None) -> tuple[dict, dict]:
    slow = core.compose(pc, sender_name=name, domain=DOMAIN, now=T0,
                        links=links).as_bytes(policy=email.policy.SMTP)
    fast = core.compose_bytes(pc, sender_name=name, domain=DOMAIN, now=T0, links=links)
    assert all(len(line) <= 998 for line in fast.split(b"\r\n"))
    return read(slow), read(fast)


def expected_text(body: str) -> str:
    return body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


@settings(max_examples=300, deadline=None)
@given(name=text, subject=text, body=st.one_of(st.none(), text), html=st.one_of(st.none(), text),
       reply=st.booleans(), links=st.booleans())
def test_a_mail_written_directly_carries_exactly_the_names_subject_and_texts(
    name, subject, body, html, reply, links
):
    """Read back by the standard parser, the mail says what the message says. (The oracle is
    the message itself: the email package's own folding sometimes adds a space between
    encoded words of a long non-ASCII name, so it is no oracle for that.)"""
    if body is None and html is None:
        body = ""
    pc = policy_checked(subject=subject, text=body, html=html,
                        in_reply_to="m-parent" if reply else None, recipient_locale="es-ES")
    offered = LINKS if links else None
    raw = core.compose_bytes(pc, sender_name=name, domain=DOMAIN, now=T0, links=offered)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert not mail.defects
    [sender] = mail["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (clean_header_text(name), pc.sender_alias)
    assert str(mail["Subject"]) == (clean_header_text(subject) or "(no subject)")
    assert mail["Message-ID"] == f"<{pc.message_id}@{DOMAIN}>"
    assert mail["In-Reply-To"] == (f"<m-parent@{DOMAIN}>" if reply else None)
    footer_text = core._footer_text(LINKS, "es") if links else ""
    footer_html = core._footer_html(LINKS, "es") if links else ""
    plain, rich = mail.get_body(("plain",)), mail.get_body(("html",))
    if body is not None:
        assert expected_text(plain.get_content()) == expected_text(body + footer_text)
    else:
        assert plain is None
    if html is not None:
        assert expected_text(rich.get_content()) == expected_text(html + footer_html)
    elif body is not None:
        assert rich is None or rich is plain


def test_the_cases_people_write_read_the_same():
    cases = [
        dict(subject="¿Cuándo llega mi silla?", text="Hola, ¿sale hoy?\n\nGracias, Ana"),
        dict(subject="Order " + "x" * 200, text="a" * 3000, html="<p>" + "b" * 3000 + "</p>"),
        dict(subject="Re: 注文について", text="ご注文ありがとう", html="<p>ご注文</p>"),
        dict(subject="plain", text="line1\r\nline2\rline3\n"),
        dict(subject="boundary", text="--=_bsm_ in the text", html="<p>--=_bsm_</p>"),
    ]
    for case in cases:
        for name in ("Muebles Sol", "Ana García-Núñez", 'Sol "SL", Madrid', "", "N" * 950,
                     "Ñ" * 400):
            slow, fast = both(policy_checked(**case), name, LINKS)
            assert fast == slow, (case, name)


def test_a_mail_written_directly_is_signed_and_verifies():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    pc = policy_checked(subject="¿Sale hoy?", text="Sí, sale hoy.", html="<p>Sí</p>")
    raw = dkim_sign.sign(core.compose_bytes(pc, sender_name="Ana García", domain=DOMAIN, now=T0),
                         domain=DOMAIN, selector="bsm1", private_key_pem=pem,
                         timestamp=int(T0.timestamp()))
    record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}".encode()
    assert dkim.verify(raw, dnsfunc=lambda _name, timeout=5: record)


def test_a_mail_with_files_is_built_by_the_email_package():
    from bsm_shared.contract.payloads import AttachmentRef

    pdf = b"%PDF-1.4"
    ref = AttachmentRef(sha256="a" * 64, size=len(pdf), filename="f.pdf",
                        content_type="application/pdf")
    pc = policy_checked(text="Factura.", attachments=[ref])
    raw = core.compose_bytes(pc, sender_name="Sol", domain=DOMAIN, now=T0, files=[(ref, pdf)])
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail.get_content_type() == "multipart/mixed"
    assert [p.get_filename() for p in mail.iter_attachments()] == ["f.pdf"]
