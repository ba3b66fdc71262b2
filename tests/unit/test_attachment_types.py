"""B4: the attachment types live once (``bsm_shared.attachments``) and every door judges with
them — the gateway's upload and references, the mail door, the policy (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from bsm_alias import mail
from bsm_policy import content, engine
from bsm_shared import attachments as file_types
from bsm_shared.contract.payloads import AttachmentRef
from tests.factories import addressed
from tests.file_samples import ALLOWED, REFUSED, bmp, docx, webp

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ORDER = engine.OrderFacts("o-1", "buyer-1", "seller-1", "shipped")


def test_b4_the_list_is_txt_pdf_doc_docx_jpg_gif_tiff_bmp_png():
    assert [t.name for t in file_types.TYPES] == [
        "txt", "pdf", "doc", "docx", "jpg", "gif", "tiff", "bmp", "png"]
    assert file_types.ACCEPTED == "txt, pdf, doc, docx, jpg, gif, tiff, bmp, png"
    assert file_types.IMAGE_MIME_TYPES == {
        "image/jpeg", "image/gif", "image/tiff", "image/bmp", "image/png"}


@pytest.mark.parametrize("name", list(ALLOWED))
def test_b4_each_type_of_the_list_is_judged_from_its_content_whatever_its_name(name):
    data, mime = ALLOWED[name]
    judged = file_types.judge(data, "misnamed.exe")
    assert isinstance(judged, file_types.FileType)
    assert (judged.name, judged.mime) == (name, mime)


@pytest.mark.parametrize("name", list(REFUSED))
def test_b4_other_types_are_refused_naming_what_the_content_is(name):
    data, detected = REFUSED[name]
    judged = file_types.judge(data, "foto.png")
    assert judged == file_types.Refused(detected, "foto.png")
    assert judged.code == "attachment_type_not_allowed"
    assert judged.message.startswith("foto.png is ")
    assert judged.message.endswith("accepted: txt, pdf, doc, docx, jpg, gif, tiff, bmp, png.")


def test_b4_a_zip_is_a_docx_only_with_a_word_document_inside():
    assert file_types.judge(docx()).name == "docx"
    for other in ("zip", "xlsx"):
        assert isinstance(file_types.judge(REFUSED[other][0]), file_types.Refused)


def test_b4_text_that_starts_with_bm_is_text_not_a_bitmap():
    assert file_types.judge(b"BMW 320d, service booklet and invoice").name == "txt"
    assert file_types.judge(bmp()).name == "bmp"


def test_b4_text_is_judged_from_the_head_even_when_it_cuts_a_character():
    text = ("abcdefg" + "Ñandú " * 2000).encode()
    cut = text[:file_types.HEAD_BYTES]
    with pytest.raises(UnicodeDecodeError):
        cut.decode("utf-8")  # the head ends inside "Ñ"
    assert file_types.judge(text).name == "txt"
    assert isinstance(file_types.judge(b"\xff\xfe not utf-8"), file_types.Refused)


def mail_with(*files: tuple[str, bytes, str]) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "juan@sol.example", "x@marketplace.example", "Docs"
    msg.set_content("Adjunto los documentos.")
    for name, data, declared in files:
        maintype, subtype = declared.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def test_b4_the_mail_door_labels_attachments_by_the_shared_judge_not_the_declared_type():
    raw = mail_with(("manual.docx", docx(), "application/octet-stream"),
                    ("plano.bmp", bmp(), "application/octet-stream"),
                    ("foto.jpg", webp(), "image/jpeg"))
    parsed = mail.parse(raw)
    assert not isinstance(parsed, mail.Refusal)
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("manual.docx", ALLOWED["docx"][1]), ("plano.bmp", "image/bmp"),
        ("foto.jpg", "image/webp")]


def seller_message(*refs: AttachmentRef):
    return addressed(
        sender={"party_id": "seller-1"}, recipient={"party_id": "buyer-1"},
        sender_party_id="seller-1", recipient_party_id="buyer-1", sender_role="seller",
        recipient_role="buyer", contact_reason="additional_information_required",
        conversation_started_by="seller", subject="Documentos", submitted_at=NOW,
        text="Le adjunto el manual y el plano de montaje.", attachments=list(refs),
        sender_locale="es-ES")


def ref(name: str, mime: str, sha: str) -> AttachmentRef:
    return AttachmentRef(sha256=sha * 64, size=1000, filename=name, content_type=mime)


CTX = engine.Context(order=ORDER, seller=engine.SellerFacts("seller-1"),
                     buyer=engine.BuyerFacts("buyer-1", region="ES"))


def test_b4_policy_takes_every_type_of_the_list_and_refuses_webp_naming_the_list():
    ok = [ref(f"f.{name}", mime, "0123456789"[i]) for i, (name, (_, mime))
          in enumerate(ALLOWED.items()) if name in {"docx", "doc", "tiff", "bmp", "pdf"}]
    assert engine.decide(seller_message(*ok), CTX).verdict == "approved"
    decision = engine.decide(seller_message(ref("foto.webp", "image/webp", "a")), CTX)
    [v] = decision.violations
    assert (v.rule, v.code, v.span.element) == ("C4", "attachment_type_not_allowed", "foto.webp")
    assert v.remedy == f"Envía archivos de estos tipos: {file_types.ACCEPTED}."


def test_b4_policy_judges_the_file_it_can_read_over_the_type_the_reference_declares():
    disguised = ref("factura.pdf", "application/pdf", "b")
    msg = seller_message(disguised)
    assert engine.decide(msg, CTX).verdict == "approved"
    judged = engine.decide(msg, CTX, content_types={"b" * 64: "application/x-msdownload"})
    assert [v.code for v in judged.violations] == ["attachment_type_not_allowed"]


def test_b4_inline_data_images_take_the_image_types_of_the_list_and_no_other():
    assert content.INLINE_IMAGE_TYPES == file_types.IMAGE_MIME_TYPES
    for mime in file_types.IMAGE_MIME_TYPES:
        assert content.allowed_url(f"data:{mime};base64,AAAA", content.IMAGE_SCHEMES)
    assert not content.allowed_url("data:image/webp;base64,AAAA", content.IMAGE_SCHEMES)
    assert "data:image/webp" not in content.sanitize_html(
        '<img src="data:image/webp;base64,AAAA" alt="x">')
