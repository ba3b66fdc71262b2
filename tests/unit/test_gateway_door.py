"""The HTTP door's pure parts: whether a message fits the shared limits, file names as
readers see them, the download header, and the shapes of header-bound fields."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from bsm_gateway.core import content_disposition, readable_filename, size_refusal
from bsm_gateway.door import MAX_REQUEST_BYTES
from bsm_gateway.models import SellerSettingsIn, SendMessage
from bsm_gateway.settings import GatewaySettings
from bsm_shared.contract.limits import (
    MAX_ATTACHMENT_BYTES, MAX_BODY_BYTES, MAX_FILENAME_CHARS,
)


def test_a_body_up_to_the_limit_fits_and_one_byte_more_is_refused_naming_both():
    assert size_refusal("a" * (MAX_BODY_BYTES - 2), "é", []) is None
    refusal = size_refusal("a" * (MAX_BODY_BYTES - 1), "é", [])
    assert refusal is not None and refusal.code == "body_too_large"
    assert (refusal.limit, refusal.size) == (MAX_BODY_BYTES, MAX_BODY_BYTES + 1)
    assert f"{MAX_BODY_BYTES + 1:,}" in refusal.message
    assert f"{MAX_BODY_BYTES:,}" in refusal.message


def test_attachments_count_together_against_the_message_limit():
    assert size_refusal("hi", None, [MAX_ATTACHMENT_BYTES // 2] * 2) is None
    refusal = size_refusal("hi", None, [MAX_ATTACHMENT_BYTES // 2, MAX_ATTACHMENT_BYTES // 2, 1])
    assert refusal is not None and refusal.code == "attachments_too_large"
    assert refusal.size == MAX_ATTACHMENT_BYTES + 1


def test_the_largest_valid_json_request_fits_the_door_even_fully_escaped():
    import json

    body = {"text": "\x01" * MAX_BODY_BYTES, "subject": "\x01" * 998,
            "attachments": [{"sha256": "a" * 64, "filename": "é" * 255}] * 20}
    assert len(json.dumps(body).encode()) <= MAX_REQUEST_BYTES


@pytest.mark.parametrize(("raw", "shown"), [
    ("invoice\r\nBcc: x@example.com.pdf", "invoice Bcc: x@example.com.pdf"),
    ("=?utf-8?q?invoice=0D=0ABcc:_x?=.txt", "invoice Bcc: x.txt"),
    ("=?utf-8?b?w7FhbmR1LnR4dA==?=", "ñandu.txt"),
    ("=?bogus-charset?q?x?=.txt", "x.txt"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\ana\\factura.pdf", "factura.pdf"),
    (".htaccess", "htaccess"),
    ("", "attachment"),
    (None, "attachment"),
    ("\r\n", "attachment"),
])
def test_file_names_are_decoded_one_line_and_without_a_path(raw, shown):
    assert readable_filename(raw) == shown


def test_a_long_file_name_is_cut_keeping_its_extension():
    name = readable_filename("x" * 1000 + ".pdf")
    assert len(name) == MAX_FILENAME_CHARS and name.endswith("x.pdf")


def filename_star(header: str) -> str:
    [value] = re.findall(r"filename\*=([^;\s]+)", header)
    charset, _, encoded = value.split("'", 2)
    assert charset == "utf-8"
    return unquote(encoded, errors="strict")


@pytest.mark.parametrize("name", [
    'a";b=c.txt', "ñandú 100%.pdf", "report\r\nSet-Cookie: x=1.txt", "a\\b.txt",
    "日本語.txt", "=?utf-8?q?x=0D=0Ay?=", "x" * 400, "tab\there.txt",
])
def test_the_download_header_is_one_safe_line_whose_filename_star_is_the_clean_name(name):
    header = content_disposition(name)
    assert re.fullmatch(r'attachment; filename="[^"\\%;\x00-\x1f\x7f]+"; '
                        r"filename\*=utf-8''[A-Za-z0-9%._~!$&'()*+,=:@-]+", header), header
    header.encode("ascii")
    assert filename_star(header) == readable_filename(name)


def test_subjects_become_one_line_and_addresses_with_line_breaks_are_refused():
    message = SendMessage(subject="Hello\r\n\tBcc: x@example.com", text="x")
    assert message.subject == "Hello Bcc: x@example.com"
    assert SendMessage(attachments=[{"sha256": "a" * 64, "filename": "a\r\nb.pdf"}]) \
        .attachments[0].filename == "a b.pdf"
    assert SellerSettingsIn(customer_service_email=" help@sol.example\n").customer_service_email \
        == "help@sol.example"
    with pytest.raises(ValidationError, match="U\\+000D"):
        SellerSettingsIn(customer_service_email="help@sol.example\r\nBcc: all@example.com")
    with pytest.raises(ValidationError, match="U\\+0020"):
        SendMessage(recipient_alias="abc@m.example x", text="x")


def test_the_upload_limit_defaults_to_the_shared_one_and_cannot_exceed_it():
    fields = GatewaySettings.model_fields["max_attachment_bytes"]
    assert fields.default == MAX_ATTACHMENT_BYTES
    keys = dict(token_key="a2V5", link_key="a2V5", signing_key="a2V5")
    with pytest.raises(ValidationError):
        GatewaySettings(**keys, max_attachment_bytes=MAX_ATTACHMENT_BYTES + 1)


def test_the_api_document_states_the_limits_the_door_enforces():
    from pathlib import Path

    from bsm_shared.contract.limits import MAX_ATTACHMENTS, MAX_EVENT_BYTES, MAX_SUBJECT_CHARS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    table = doc[doc.index("## Limits and refusals at the door"):doc.index("## Endpoints")]
    for figure in (f"{MAX_REQUEST_BYTES:,}", f"{MAX_BODY_BYTES:,}", f"{MAX_ATTACHMENT_BYTES:,}",
                   f"{MAX_EVENT_BYTES:,}", f"`MAX_ATTACHMENTS`: {MAX_ATTACHMENTS}",
                   f"{MAX_SUBJECT_CHARS} characters", f"({MAX_FILENAME_CHARS})"):
        assert figure in table, figure
