"""Bounce reports read by the mail door (bsm_alias.dsn): RFC 3464 reports of real providers'
shapes, non-standard bounces, and no address of anyone in what is read."""

from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bsm_alias import dsn
from tests.dsn_support import dsn_mail

RECIPIENT = "ana.lopez.1987@buyer-mail.example"
RETURN_PATH = ("bounces+0193a5c2-7d1e-7b2a-9c3d-1e2f3a4b5c6d.tjx8k0.abcdefghijklm"
               "@marketplace.example")
MSGID = "0193a5c2-7d1e-7b2a-9c3d-1e2f3a4b5c6d@marketplace.example"


def read(name: str, nonce: str = "n1") -> dsn.Report:
    report = dsn.read_report(dsn_mail(name, return_path=RETURN_PATH, recipient=RECIPIENT,
                                      msgid=MSGID, nonce=nonce))
    assert report is not None
    return report


@pytest.mark.parametrize(("shape", "status", "mta", "words"), [
    ("postfix", "5.1.1", "mx1.mail-provider.example", "User unknown in virtual mailbox table"),
    ("exchange_ndr", "5.1.10", "am6pr01mb1234.eurprd01.prod.exchangelabs.com",
     "RESOLVER.ADR.RecipientNotFound"),
    ("gmail", "5.1.1", "googlemail.com", "The email account that you tried to reach does not"),
])
def test_an_rfc_3464_report_gives_action_status_diagnostic_and_reporting_host(
    shape, status, mta, words
):
    report = read(shape)
    assert (report.action, report.status, report.reporting_mta, report.standard) == (
        "failed", status, mta, True)
    assert words in report.diagnostic
    assert "\n" not in report.diagnostic


@pytest.mark.parametrize("shape", ["postfix", "exchange_ndr", "gmail", "postfix_delayed",
                                   "plain_undelivered"])
def test_no_address_of_the_recipient_or_anyone_is_in_what_is_read(shape):
    report = read(shape)
    for value in (report.diagnostic, report.reporting_mta, report.status, report.action):
        assert "@" not in value and RECIPIENT.split("@")[0] not in value


def test_the_diagnostic_says_where_an_address_stood():
    assert "<[address]>: Recipient address rejected" in read("postfix").diagnostic


def test_a_delay_warning_is_read_as_delayed_with_its_4xx_status():
    report = read("postfix_delayed")
    assert (report.action, report.status, report.standard) == ("delayed", "4.4.1", True)
    assert "Connection timed out" in report.diagnostic


def test_a_plain_text_bounce_without_a_delivery_status_part_is_failed_5_0_0_and_says_so():
    report = read("plain_undelivered")
    assert (report.action, report.status, report.standard) == ("failed", "5.0.0", False)
    assert report.diagnostic.startswith("Non-standard bounce (no delivery-status part)")
    assert "User unknown in local recipient table" in report.diagnostic
    assert report.reporting_mta == "smtp.old-isp.example"


def test_the_same_report_retried_has_the_same_id_and_another_report_another():
    assert read("postfix", nonce="a").report_id == read("postfix", nonce="a").report_id
    assert read("postfix", nonce="a").report_id != read("postfix", nonce="b").report_id


def test_a_report_without_message_id_is_identified_by_its_bytes():
    raw = dsn_mail("postfix", return_path=RETURN_PATH, recipient=RECIPIENT, msgid=MSGID,
                   nonce="x").replace(b"Message-Id:", b"X-Old-Message-Id:")
    first, again = dsn.read_report(raw), dsn.read_report(raw)
    assert first is not None and again is not None
    assert first.report_id.startswith("sha256:") and first.report_id == again.report_id


def test_an_out_of_office_reply_at_the_return_path_is_no_report():
    reply = EmailMessage()
    reply["From"] = RECIPIENT
    reply["To"] = RETURN_PATH
    reply["Subject"] = "Out of office: Silla"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am on holiday until Monday and will answer then.")
    assert dsn.read_report(reply.as_bytes()) is None


def test_of_several_recipients_the_failed_one_counts():
    raw = dsn_mail("postfix", return_path=RETURN_PATH, recipient=RECIPIENT, msgid=MSGID)
    # Put a `delivered` recipient block before the failed one.
    raw = raw.replace(b"Final-Recipient: rfc822; ", b"Final-Recipient: rfc822; other@x.example"
                      b"\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\nFinal-Recipient: rfc822; ", 1)
    report = dsn.read_report(raw)
    assert report is not None and (report.action, report.status) == ("failed", "5.1.1")


@given(local=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}", fullmatch=True),
       domain=st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z]{2,6}){1,2}", fullmatch=True),
       before=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
       after=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
       wrap=st.sampled_from(["{}", "<{}>", "rfc822;{}", '"{}"', "({})", "[{}]"]))
def test_redaction_leaves_no_address_in_any_surrounding(local, domain, before, after, wrap):
    address = f"{local}@{domain}"
    text = dsn.redact(before + " " + wrap.format(address) + " " + after)
    assert address not in text and f"{local}@" not in text
    assert "[address]" in text


def test_a_reporting_mta_that_is_not_a_host_name_is_dropped():
    assert dsn.host_name("dns; mx.example.com") == "mx.example.com"
    assert dsn.host_name("dns;AM6PR01.prod.outlook.com. (2603::1)") == "am6pr01.prod.outlook.com"
    assert dsn.host_name("x-local; postmaster@host.example") == ""
    assert dsn.host_name("dns; [192.0.2.1]") == ""


def test_the_metrics_projections_ignore_a_bounce_report():
    from bsm_metrics import projections

    event = {"type": "BounceReportReceived", "version": 1, "data": {
        "message_id": "m-1", "received_at": "2026-11-21T12:00:00+00:00", "action": "failed",
        "status": "5.1.1", "diagnostic": "", "reporting_mta": "mx.example.com",
        "standard": True}}
    assert projections.operations(event) == []
